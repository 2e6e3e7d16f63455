#!/usr/bin/env bash
# Image classification: a multipart upload of a file (field `image`).   ./classify.sh IMAGE [TOP_K]
# HEARTH_CLASSIFY_MODEL picks the model; by default the server uses its first image classifier.
set -euo pipefail
source "$(dirname "$0")/_common.sh"
image="${1:?usage: classify.sh IMAGE [TOP_K]}"
model=()
if [[ -n "${HEARTH_CLASSIFY_MODEL:-}" ]]; then
  model=(-F "model=${HEARTH_CLASSIFY_MODEL}")
fi

curl -sS --fail-with-body "$API/classify" "${AUTH[@]}" \
  -F "image=@${image}" \
  -F "top_k=${2:-3}" \
  "${model[@]}"
echo
