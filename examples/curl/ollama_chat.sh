#!/usr/bin/env bash
# Ollama's chat API: NDJSON, one JSON object per line, the last one with "done": true and the
# counts and timings. Pass --no-stream for one JSON object.   ./ollama_chat.sh [--no-stream] ["question"]
set -euo pipefail
source "$(dirname "$0")/_common.sh"
stream=true
if [[ "${1:-}" == "--no-stream" ]]; then
  stream=false
  shift
fi
prompt="${1:-What is the capital of France?}"

curl -sS -N --fail-with-body "${base%/v1}/api/chat" "${AUTH[@]}" \
  -d "{
    \"model\": \"$CHAT_MODEL\",
    \"messages\": [{\"role\": \"user\", \"content\": $(json_string "$prompt")}],
    \"options\": {\"num_predict\": 32, \"temperature\": 0},
    \"stream\": $stream
  }"
echo
