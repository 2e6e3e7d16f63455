#!/usr/bin/env bash
# Build the local Debian base image localhost/debian-python:bookworm with debootstrap, for
# machines that reach Debian's mirror and PyPI but no container registry. Real users build
# FROM python:3.11-slim (the Containerfile's default) and never need this.
#
#   deploy/scripts/build-base-image.sh [--force]
#
# What is in it (Debian's python3 is 3.11 on bookworm):
#   python3, python3-venv  the Containerfile makes a venv (python3 -m venv /opt/hearth): Debian's
#                          system pip is "externally managed", and python3-venv brings ensurepip's
#                          bundled pip and setuptools, so python3-pip is not needed;
#   ca-certificates        plus this machine's /etc/ssl/certs/ca-certificates.crt copied in, or
#                          pip inside the build fails with CERTIFICATE_VERIFY_FAILED;
#   libgomp1               OpenMP, which llama.cpp's CPU backend links to (the Containerfile
#                          installs it with apt when a base lacks it, as python:3.11-slim does).
# No compiler: the Containerfile's builder stage installs build-essential and cmake from the
# Debian mirror only when it must compile llama-cpp-python (no wheel in deploy/wheels/).
#
# Cached: nothing is done when the image exists (about 40 s otherwise). Needs root and podman
# (deploy/scripts/setup-podman.sh).
set -euo pipefail

IMAGE=${HEARTH_BASE_IMAGE:-localhost/debian-python:bookworm}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-venv,ca-certificates,libgomp1
HOST_CA=/etc/ssl/certs/ca-certificates.crt

if [ "${1:-}" != "--force" ] && podman image exists "$IMAGE"; then
  echo "build-base-image.sh: $IMAGE exists (pass --force to rebuild)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "build-base-image.sh: debootstrap needs root" >&2
  exit 1
fi
command -v debootstrap >/dev/null || { echo "build-base-image.sh: install debootstrap" >&2; exit 1; }

ROOT=$(mktemp -d /var/tmp/hearth-rootfs.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
started=$(date +%s)
echo "build-base-image.sh: debootstrap $SUITE into $ROOT ($PACKAGES)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || {
  tail -30 "$ROOT.log" >&2
  rm -f "$ROOT.log"
  exit 1
}
rm -f "$ROOT.log"

# Apt inside the image (builder stage) gets the same mirror, with updates and security fixes.
cat >"$ROOT/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} $SUITE-security main
SOURCES
# The machine's CA bundle: pip (and apt over https) inside builds trust what this machine trusts.
if [ -f "$HOST_CA" ]; then
  cp "$HOST_CA" "$ROOT/etc/ssl/certs/ca-certificates.crt"
  # Also as a local CA so that a later update-ca-certificates (an apt trigger) keeps it.
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp "$HOST_CA" "$ROOT/usr/local/share/ca-certificates/host-bundle.crt"
fi
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* \
  "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/*

tar --numeric-owner -C "$ROOT" -c . | podman import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  - "$IMAGE" >/dev/null
echo "build-base-image.sh: imported $IMAGE in $(($(date +%s) - started)) s"
