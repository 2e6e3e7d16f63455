#!/usr/bin/env bash
# The models this server (and key) may use; with an id, that model's details.   ./models.sh [ID]
set -euo pipefail
source "$(dirname "$0")/_common.sh"

curl -sS --fail-with-body "$API/models${1:+/$1}" "${AUTH[@]}"
echo
