#!/usr/bin/env bash
# Make podman build and run containers on this kind of machine (Debian bookworm, run as root,
# inside a VM or container whose cgroups are in "hybrid" mode). Idempotent and quick when done.
#
#   - installs podman, runc and debootstrap with apt-get when one is missing;
#   - /etc/containers/containers.conf: [containers] default_ulimits = [] (the host's ulimits
#     cannot be raised in here) and [engine] cgroup_manager = "cgroupfs" plus runtime = "runc"
#     (crun fails with "cgroups in hybrid mode"; callers still pass --runtime runc to be sure);
#   - checks that `podman --runtime runc info` works.
#
# Builds then use:  podman --runtime runc build --network=host ...
# On an ordinary workstation or server none of this is needed: install podman (or Docker) and go.
set -euo pipefail

CONF=${CONTAINERS_CONF_FILE:-/etc/containers/containers.conf}
MARK="# hearth: settings for podman on this machine (deploy/scripts/setup-podman.sh)"

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-podman.sh: run as root (it installs packages and writes $CONF)" >&2
    exit 1
  fi
}

missing=()
for pkg_cmd in podman:podman runc:runc debootstrap:debootstrap; do
  cmd=${pkg_cmd#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_cmd%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
  need_root
  echo "setup-podman.sh: installing ${missing[*]}"
  # An update only when the lists are missing or older than a day: quick when run again.
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -1440 2>/dev/null | head -1)" ]; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- containers.conf ------------------------------------------------------------------------
set_key() { # set_key SECTION KEY VALUE: add or replace KEY in [SECTION] of $CONF
  local section=$1 key=$2 value=$3
  if ! grep -q "^\[$section\]" "$CONF"; then
    printf '\n[%s]\n%s = %s\n' "$section" "$key" "$value" >>"$CONF"
  elif awk -v s="[$section]" -v k="$key" '
      $0 == s {inside = 1; next}
      /^\[/ {inside = 0}
      inside && $1 == k {found = 1}
      END {exit !found}' "$CONF"; then
    awk -v s="[$section]" -v k="$key" -v v="$value" '
      $0 == s {inside = 1; print; next}
      /^\[/ {inside = 0}
      inside && $1 == k {print k " = " v; next}
      {print}' "$CONF" >"$CONF.tmp" && mv "$CONF.tmp" "$CONF"
  else
    awk -v s="[$section]" -v line="$key = $value" '
      {print}
      $0 == s {print line}' "$CONF" >"$CONF.tmp" && mv "$CONF.tmp" "$CONF"
  fi
}

wanted() {
  grep -qx 'default_ulimits = \[\]' "$CONF" 2>/dev/null &&
    grep -qx 'cgroup_manager = "cgroupfs"' "$CONF" 2>/dev/null &&
    grep -qx 'runtime = "runc"' "$CONF" 2>/dev/null
}

if ! wanted; then
  need_root
  mkdir -p "$(dirname "$CONF")"
  [ -f "$CONF" ] || printf '%s\n' "$MARK" >"$CONF"
  set_key containers default_ulimits '[]'
  set_key engine cgroup_manager '"cgroupfs"'
  set_key engine runtime '"runc"'
  echo "setup-podman.sh: wrote $CONF"
fi

if ! podman --runtime runc info >/dev/null 2>&1; then
  echo "setup-podman.sh: podman does not work here:" >&2
  podman --runtime runc info >&2 || true
  exit 1
fi
echo "setup-podman.sh: podman $(podman --version | awk '{print $3}') ready (runtime runc, $(podman info --format '{{.Store.GraphDriverName}}') storage)"
