#!/usr/bin/env bash
# Open Inference Protocol v2: an image file in (a BYTES tensor, base64 in JSON), labels and scores out.
#   ./oip_classify.sh IMAGE [TOP_K]     HEARTH_CLASSIFY_MODEL picks the model (default efficientnet-lite0)
set -euo pipefail
source "$(dirname "$0")/_common.sh"
image="${1:?usage: oip_classify.sh IMAGE [TOP_K]}"
model="${HEARTH_CLASSIFY_MODEL:-efficientnet-lite0}"
body="$(mktemp)"
trap 'rm -f "$body"' EXIT
printf '{"parameters": {"top_k": %d}, "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["%s"]}]}' \
  "${2:-3}" "$(base64 < "$image" | tr -d '\n')" > "$body"

curl -sS --fail-with-body "${base%/v1}/v2/models/$model/infer" "${AUTH[@]}" \
  -H "Content-Type: application/json" --data-binary "@$body"
echo
