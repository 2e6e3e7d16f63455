#!/usr/bin/env bash
# Open Inference Protocol v2 (KServe / Triton): texts in as a BYTES tensor, embeddings out as FP32.
#   ./oip_embed.sh ["text" ...]
set -euo pipefail
source "$(dirname "$0")/_common.sh"
if [[ $# -eq 0 ]]; then
  set -- "Hearth serves models from your own machine." "A cat sleeps on the sofa."
fi
data=""
for text in "$@"; do
  data+="${data:+, }$(json_string "$text")"
done

curl -sS --fail-with-body "${base%/v1}/v2/models/$EMBED_MODEL/infer" "${AUTH[@]}" \
  -H "Content-Type: application/json" \
  -d "{\"inputs\": [{\"name\": \"text\", \"shape\": [$#], \"datatype\": \"BYTES\", \"data\": [$data]}]}"
echo
