"""Time to the first token of a tool call, against the first token of a plain answer.

The default ``hearth serve`` (four models, a key, the ledger), streamed through the official
``openai`` SDK on the default chat model (SmolLM2), one request at a time, alternating:

- ``plain``: "What is the weather in Paris?" with no tools: time to the first content delta;
- ``tool``: the same question with a ``get_weather`` tool and ``tool_choice: required``: time to
  the first ``tool_calls`` delta (the one that carries the call's id and name), and to the
  call's end.

    .venv/bin/python -m bench.tool_call_ttft [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

from bench.common import RESULTS, free_port, median, start_default_hearth, stop, wait_http

QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
                "required": ["city", "unit"],
                "additionalProperties": False,
            },
        },
    }
]


def plain(sdk: openai.OpenAI) -> float:
    started = time.perf_counter()
    first = None
    for chunk in sdk.chat.completions.create(
        model="smollm2",
        messages=QUESTION,
        max_tokens=32,
        stream=True,  # type: ignore[arg-type]
    ):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    assert first is not None
    return first


def tool(sdk: openai.OpenAI) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    arguments: dict[int, str] = {}  # per call: the model may make several (parallel_tool_calls)
    for chunk in sdk.chat.completions.create(
        model="smollm2",
        messages=QUESTION,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=200,
        stream=True,  # type: ignore[arg-type]
    ):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if first is None and call.function is not None and call.function.name:
                first = time.perf_counter() - started
            if call.function is not None and call.function.arguments:
                arguments[call.index] = arguments.get(call.index, "") + call.function.arguments
    total = time.perf_counter() - started
    finish = chunk.choices[0].finish_reason if chunk.choices else None
    assert finish == "tool_calls", (finish, arguments)
    assert first is not None and arguments and all(json.loads(a)["city"] for a in arguments.values()), (
        arguments
    )
    return first, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hearth-tool-ttft-"))
    server, base, key = start_default_hearth(work, free_port())
    try:
        wait_http(base + "/ready")
        sdk = openai.OpenAI(base_url=base + "/v1", api_key=key)
        plain(sdk), tool(sdk)  # warm-up
        plains, firsts, totals = [], [], []
        for _ in range(args.rounds):
            plains.append(plain(sdk))
            first, total = tool(sdk)
            firsts.append(first)
            totals.append(total)
    finally:
        stop(server)
    summary = {
        "plain_first_token_ms": round(1000 * median(plains), 1),
        "tool_call_first_delta_ms": round(1000 * median(firsts), 1),
        "tool_call_complete_ms": round(1000 * median(totals), 1),
        "rounds": args.rounds,
    }
    print(json.dumps(summary, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tool_call_ttft.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
