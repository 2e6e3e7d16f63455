#!/usr/bin/env bash
# Embeddings for one or more texts.   ./embeddings.sh ["text" ...]
set -euo pipefail
source "$(dirname "$0")/_common.sh"
if [[ $# -eq 0 ]]; then
  set -- "Hearth serves models from your own machine." "A cat sleeps on the sofa."
fi
inputs=""
for text in "$@"; do
  inputs+="${inputs:+, }$(json_string "$text")"
done

curl -sS --fail-with-body "$API/embeddings" "${AUTH[@]}" \
  -H "Content-Type: application/json" \
  -d "{\"model\": \"$EMBED_MODEL\", \"input\": [$inputs]}"
echo
