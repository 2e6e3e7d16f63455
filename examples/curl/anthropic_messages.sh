#!/usr/bin/env bash
# Anthropic's Messages API: a reply, or with --stream its named server-sent events
# (message_start ... message_stop). The key goes in x-api-key, as Anthropic's clients send it.
#   ./anthropic_messages.sh [--stream] ["your question"]
set -euo pipefail
source "$(dirname "$0")/_common.sh"
stream=false
if [[ "${1:-}" == "--stream" ]]; then
  stream=true
  shift
fi
prompt="${1:-What is the capital of France?}"
KEY=()
if [[ -n "${HEARTH_API_KEY:-}" ]]; then
  KEY=(-H "x-api-key: ${HEARTH_API_KEY}")
fi

curl -sS -N --fail-with-body "$API/messages" "${KEY[@]}" \
  -H "anthropic-version: 2023-06-01" \
  -H "Content-Type: application/json" \
  -d "{
    \"model\": \"$CHAT_MODEL\",
    \"system\": \"You answer in one short sentence.\",
    \"messages\": [{\"role\": \"user\", \"content\": $(json_string "$prompt")}],
    \"max_tokens\": 32,
    \"stream\": $stream
  }"
echo
