#!/usr/bin/env bash
# A chat completion.   ./chat.sh ["your question"]
set -euo pipefail
source "$(dirname "$0")/_common.sh"
prompt="${1:-What is the capital of France?}"

curl -sS --fail-with-body "$API/chat/completions" "${AUTH[@]}" \
  -H "Content-Type: application/json" \
  -d "{
    \"model\": \"$CHAT_MODEL\",
    \"messages\": [
      {\"role\": \"system\", \"content\": \"You answer in one short sentence.\"},
      {\"role\": \"user\", \"content\": $(json_string "$prompt")}
    ],
    \"max_tokens\": 32
  }"
echo
