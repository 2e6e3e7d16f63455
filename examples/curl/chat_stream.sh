#!/usr/bin/env bash
# A streamed chat completion: server-sent events, one `data: {chunk}` line per token, then
# a usage chunk and `data: [DONE]`.   ./chat_stream.sh ["your question"]
set -euo pipefail
source "$(dirname "$0")/_common.sh"
prompt="${1:-Count from one to five.}"

curl -sS -N --fail-with-body "$API/chat/completions" "${AUTH[@]}" \
  -H "Content-Type: application/json" \
  -d "{
    \"model\": \"$CHAT_MODEL\",
    \"messages\": [{\"role\": \"user\", \"content\": $(json_string "$prompt")}],
    \"max_tokens\": 32,
    \"stream\": true,
    \"stream_options\": {\"include_usage\": true}
  }"
