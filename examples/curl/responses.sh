#!/usr/bin/env bash
# The Responses API: a stored response, or the next turn of a conversation the server keeps
# (pass the previous response's id: nothing earlier is resent). --stream prints the typed events.
#   ./responses.sh [--stream] ["your question"] [PREVIOUS_RESPONSE_ID]
set -euo pipefail
source "$(dirname "$0")/_common.sh"
stream=false
if [[ "${1:-}" == "--stream" ]]; then
  stream=true
  shift
fi
prompt="${1:-What is the capital of France?}"
previous="${2:-}"
previous_json=null
if [[ -n "$previous" ]]; then
  previous_json=$(json_string "$previous")
fi

curl -sS -N --fail-with-body "$API/responses" "${AUTH[@]}" \
  -H "Content-Type: application/json" \
  -d "{
    \"model\": \"$CHAT_MODEL\",
    \"instructions\": \"You answer in one short sentence.\",
    \"input\": $(json_string "$prompt"),
    \"previous_response_id\": $previous_json,
    \"max_output_tokens\": 32,
    \"stream\": $stream
  }"
echo
