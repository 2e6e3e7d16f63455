"""Small agent tasks through five agent frameworks, on the default ``hearth serve``.

Each task (weather, arithmetic with a calculator, a unit conversion, a lookup in a tiny table;
``bench/agent_tasks.py``) runs through the OpenAI Agents SDK (Responses API), the Anthropic SDK's
tool runner, pydantic-ai, the Vercel AI SDK's multi-step loop and LangGraph's prebuilt ReAct agent
(``bench/agent_frameworks.py``), each with its defaults and only the base URL changed, with
several seeds. Per framework it reports the share of runs that end with a text answer within
``--turns`` model turns, the share of tool calls that name the task's tool with arguments its
schema accepts, the mean turns, and the share of answers that hold the expected fact.

    .venv/bin/python -m bench.agents [--seeds 5] [--turns 3] [--frameworks openai-agents ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.agent_frameworks import FRAMEWORKS, install_aisdk
from bench.agent_tasks import TASKS, Outcome, valid_call
from bench.common import RESULTS, free_port, start_default_hearth, stop, wait_http

console = Console()


def summary(outcomes: list[tuple[str, Outcome]], turns: int) -> dict[str, Any]:
    calls = [(task, call) for task, o in outcomes for call in o.calls]
    by_name = {t.name: t for t in TASKS}
    return {
        "runs": len(outcomes),
        "ended_within": sum(o.ended(turns) for _, o in outcomes) / len(outcomes),
        "valid_calls": sum(valid_call(by_name[t], *c) for t, c in calls) / len(calls) if calls else None,
        "calls": len(calls),
        "used_tool": sum(bool(o.calls) for _, o in outcomes) / len(outcomes),
        "mean_turns": sum(o.turns for _, o in outcomes) / len(outcomes),
        "answer_holds_fact": sum(by_name[t].answer.lower() in o.text.lower() for t, o in outcomes)
        / len(outcomes),
        "errors": sorted({o.error[:160] for _, o in outcomes if o.error}),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=list(FRAMEWORKS))
    args = parser.parse_args()
    if "vercel-ai-sdk" in args.frameworks:
        install_aisdk()
    work = Path(tempfile.mkdtemp(prefix="hearth-agents-"))
    process, base, key = start_default_hearth(work, free_port())
    wait_http(base + "/ready")
    results: dict[str, list[tuple[str, Outcome]]] = {name: [] for name in args.frameworks}
    runs: list[dict[str, Any]] = []
    try:
        with Progress(console=console) as progress:
            bar = progress.add_task("agent runs", total=args.seeds * len(TASKS) * len(args.frameworks))
            for seed in range(args.seeds):  # frameworks alternate within each seed
                for task in TASKS:
                    for name in args.frameworks:
                        started = time.perf_counter()
                        try:
                            outcome = FRAMEWORKS[name](task, seed, base, key, args.turns)
                        except Exception as exc:  # a framework's own failure is a failed run, reported
                            outcome = Outcome(error=f"{type(exc).__name__}: {exc}")
                        results[name].append((task.name, outcome))
                        runs.append({"framework": name, "task": task.name, "seed": seed, "turns": outcome.turns,
                                     "text": outcome.text[:300], "calls": outcome.calls, "error": outcome.error[:300],
                                     "seconds": round(time.perf_counter() - started, 2)})  # fmt: skip
                        progress.advance(bar)
    finally:
        stop(process)
    report = {name: summary(outcomes, args.turns) for name, outcomes in results.items()}
    table = Table(title=f"agent tasks, default model, {args.seeds} seeds x {len(TASKS)} tasks")
    for column in ("framework", f"ended with text in <= {args.turns} turns", "valid calls", "used the tool",
                   "mean turns", "answer holds the fact"):  # fmt: skip
        table.add_column(column)
    for name, row in report.items():
        valid = "-" if row["valid_calls"] is None else f"{row['valid_calls']:.0%} of {row['calls']}"
        table.add_row(name, f"{row['ended_within']:.0%}", valid, f"{row['used_tool']:.0%}",
                      f"{row['mean_turns']:.2f}", f"{row['answer_holds_fact']:.0%}")  # fmt: skip
    console.print(table)
    for name, row in report.items():
        for error in row["errors"]:
            console.print(f"[yellow]{name}[/]: {error}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "agents.json").write_text(json.dumps({"report": report, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
