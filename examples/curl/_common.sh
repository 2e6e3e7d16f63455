# Sourced by the other scripts: where the server is, and the key to send.
#   HEARTH_BASE_URL  default http://127.0.0.1:8000 (with or without /v1)
#   HEARTH_API_KEY   an hk-... key (`hearth keys create NAME`); leave unset for `hearth serve --no-auth`
base="${HEARTH_BASE_URL:-http://127.0.0.1:8000}"
base="${base%/}"
API="${base%/v1}/v1"
AUTH=()
if [[ -n "${HEARTH_API_KEY:-}" ]]; then
  AUTH=(-H "Authorization: Bearer ${HEARTH_API_KEY}")
fi
CHAT_MODEL="${HEARTH_CHAT_MODEL:-gemma-3-270m}"
EMBED_MODEL="${HEARTH_EMBED_MODEL:-all-minilm-l6-v2}"

# A JSON string literal for $1 (backslashes, quotes, newlines and tabs escaped).
json_string() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}
