#!/usr/bin/env bash
# A plain text completion (no chat template).   ./completions.sh ["text to continue"]
set -euo pipefail
source "$(dirname "$0")/_common.sh"
prompt="${1:-Once upon a time}"

curl -sS --fail-with-body "$API/completions" "${AUTH[@]}" \
  -H "Content-Type: application/json" \
  -d "{\"model\": \"$CHAT_MODEL\", \"prompt\": $(json_string "$prompt"), \"max_tokens\": 24}"
echo
