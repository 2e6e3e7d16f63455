"""A batch's input file: JSONL lines of ``custom_id``, ``method``, ``url`` and ``body``, checked
as OpenAI checks them, with one error per malformed line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, as errors name it
    custom_id: str
    body: dict[str, Any]


def parse_lines(content: bytes, endpoint: str) -> tuple[list[Line], list[dict[str, Any]]]:
    """The batch's lines, or an error per malformed line (OpenAI's ``errors.data``)."""
    lines: list[Line] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()

    def fail(number: int, code: str, message: str, param: str | None = None) -> None:
        errors.append({"code": code, "message": message, "param": param, "line": number})

    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return [], [
            {
                "code": "invalid_file",
                "message": "the input file is not UTF-8 text",
                "param": None,
                "line": None,
            }
        ]
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            fail(number, "invalid_json_line", f"line {number} is not valid JSON")
            continue
        if not isinstance(item, dict):
            fail(number, "invalid_json_line", f"line {number} is not a JSON object")
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            fail(number, "missing_required_parameter", "each line needs a custom_id string", "custom_id")
        elif custom_id in seen:
            fail(
                number,
                "duplicate_custom_id",
                f"custom_id {custom_id!r} appears on more than one line",
                "custom_id",
            )
        if item.get("method", "POST") != "POST":
            fail(number, "invalid_value", "method must be POST", "method")
        if item.get("url") != endpoint:
            fail(number, "invalid_value", f"url must be the batch's endpoint, {endpoint}", "url")
        if not isinstance(item.get("body"), dict):
            fail(number, "missing_required_parameter", "each line needs a body object", "body")
        if isinstance(custom_id, str) and custom_id:
            seen.add(custom_id)
            if isinstance(item.get("body"), dict):
                lines.append(Line(number, custom_id, item["body"]))
    if not lines and not errors:
        errors.append(
            {"code": "empty_file", "message": "the input file has no lines", "param": None, "line": None}
        )
    return lines, errors


# A request's input, in every family's field names: what a batch's enqueued tokens count.
INPUT_FIELDS = ("messages", "input", "prompt", "system", "instructions", "tools", "suffix")


def estimated_input_tokens(bodies: list[dict[str, Any]]) -> int:
    """The input tokens of a batch's requests before any tokenizer has seen them: about four
    bytes of their JSON a token, the rule of thumb for English text (a key's enqueued-token limit
    counts this, as OpenAI's counts its own estimate)."""
    total = 0
    for body in bodies:
        given = {name: body[name] for name in INPUT_FIELDS if name in body}
        total += -(-len(json.dumps(given, ensure_ascii=False).encode()) // 4)
    return total
