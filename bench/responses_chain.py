"""A ten-turn conversation: ``previous_response_id`` (the server keeps it) versus chat completions
(the client resends the whole history), on the default ``hearth serve`` with keys and the ledger.

Each round is one conversation of ten turns through one path; rounds alternate (responses, chat,
responses, ...). Turns 1-9 are plain requests; the tenth streams, and we time its first text
delta (TTFT) and read its usage: the tokens prefilled are the prompt minus what the slot's prefix
cache held. Greedy sampling (temperature 0) keeps the two paths' conversations alike (a pair of
rounds, one per path, share a session number). They are not identical: llama.cpp's greedy
answer varies with where the KV cells land, on either path alike, so the JSON counts the
identical turns and the figures are medians. Before every round
one short unrelated request per slot evicts every cached prefix (the scheduler gives a request
with nothing to reuse the least recently used slot), so no round reuses another round's KV.

    .venv/bin/python -m bench.responses_chain [--rounds 10] [--max-tokens 48] [--fake]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import track
from rich.table import Table

from bench.common import RESULTS, free_port, median, start_hearth, stop, wait_http

console = Console()
ADMIN = "bench-admin-secret"
FAKE_MODELS = '[{"id": "smollm2", "kind": "chat", "backend": "fake", "source": "-"}]'
TURNS = [
    "I am planning a week in Japan in spring. Which city should I start in?",
    "What food should I try there first?",
    "How do I get from Tokyo to Kyoto?",
    "What should I see in Kyoto in one day?",
    "Is it worth going to Nara as well?",
    "What is a good souvenir to bring home?",
    "How much cash should I carry?",
    "Any tips for the trains at rush hour?",
    "What should I pack for the weather?",
    "Can you sum up my plan in two sentences?",
]


def instructions(session: int) -> str:
    return f"Session {session}. You are a helpful travel assistant. Answer briefly."


class Conversation:
    def __init__(self, client: httpx.Client, model: str, max_tokens: int, session: int) -> None:
        self.client, self.model, self.max_tokens = client, model, max_tokens
        self.system = instructions(session)
        self.answers: list[str] = []

    def _last(self, path: str, body: dict[str, Any], delta: str) -> tuple[float, dict[str, Any]]:
        """Stream the last turn: seconds to the first text delta, and the final usage."""
        started = time.perf_counter()
        ttft, usage, text = None, {}, []
        with self.client.stream("POST", path, json=body) as reply:
            reply.raise_for_status()
            for line in reply.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                piece = delta_of(event, delta)
                if piece and ttft is None:
                    ttft = time.perf_counter() - started
                text.append(piece or "")
                usage = usage_of(event) or usage
        self.answers.append("".join(text))
        assert ttft is not None and usage, "the last turn streamed no text or no usage"
        return ttft, usage


def delta_of(event: dict[str, Any], kind: str) -> str | None:
    if kind == "chat":
        choices = event.get("choices") or [{}]
        return str(choices[0].get("delta", {}).get("content") or "") or None
    return str(event["delta"]) if event.get("type") == "response.output_text.delta" else None


def usage_of(event: dict[str, Any]) -> dict[str, int] | None:
    """{prompt, cached, completion} from a chat chunk with usage or a final response event."""
    if event.get("usage"):
        u = event["usage"]
        return {
            "prompt": u["prompt_tokens"],
            "cached": u["prompt_tokens_details"]["cached_tokens"],
            "completion": u["completion_tokens"],
        }
    response = event.get("response") or {}
    if event.get("type") in ("response.completed", "response.incomplete") and response.get("usage"):
        u = response["usage"]
        return {
            "prompt": u["input_tokens"],
            "cached": u["input_tokens_details"]["cached_tokens"],
            "completion": u["output_tokens"],
        }
    return None


def flush_slots(client: httpx.Client, model: str, slots: int) -> None:
    """Overwrite every slot's cached prefix: distinct prompts, sharing too little to be reused."""
    for _ in range(slots):
        noise = uuid.uuid4().hex
        messages = [
            {"role": "system", "content": f"{noise} {noise[::-1]}"},
            {"role": "user", "content": noise},
        ]
        body = {"model": model, "messages": messages, "max_tokens": 1}
        client.post("/v1/chat/completions", json=body).raise_for_status()


def via_responses(talk: Conversation) -> tuple[float, dict[str, int], int]:
    previous, prefilled = None, 0
    common = {
        "model": talk.model,
        "instructions": talk.system,
        "max_output_tokens": talk.max_tokens,
        "temperature": 0,
    }
    for question in TURNS[:-1]:
        body = {**common, "input": question, "previous_response_id": previous}
        reply = talk.client.post("/v1/responses", json=body).raise_for_status().json()
        previous = reply["id"]
        talk.answers.append("".join(p["text"] for item in reply["output"] for p in item["content"]))
        usage = reply["usage"]
        prefilled += usage["input_tokens"] - usage["input_tokens_details"]["cached_tokens"]
    body = {**common, "input": TURNS[-1], "previous_response_id": previous, "stream": True}
    ttft, usage = talk._last("/v1/responses", body, "responses")
    return ttft, usage, prefilled + usage["prompt"] - usage["cached"]


def via_chat(talk: Conversation) -> tuple[float, dict[str, int], int]:
    messages: list[dict[str, str]] = [{"role": "system", "content": talk.system}]
    common = {"model": talk.model, "max_tokens": talk.max_tokens, "temperature": 0}
    prefilled = 0
    for question in TURNS[:-1]:
        messages.append({"role": "user", "content": question})
        reply = talk.client.post(
            "/v1/chat/completions", json={**common, "messages": messages}
        ).raise_for_status()
        data = reply.json()
        answer = data["choices"][0]["message"]["content"]
        talk.answers.append(answer)
        messages.append({"role": "assistant", "content": answer})
        prefilled += data["usage"]["prompt_tokens"] - data["usage"]["prompt_tokens_details"]["cached_tokens"]
    messages.append({"role": "user", "content": TURNS[-1]})
    body = {**common, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}
    ttft, usage = talk._last("/v1/chat/completions", body, "chat")
    return ttft, usage, prefilled + usage["prompt"] - usage["cached"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10, help="conversations, alternating the two paths")
    parser.add_argument("--max-tokens", type=int, default=48, help="per answer")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--slots", type=int, default=8, help="the model's slots (flushed before each round)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted conversations per path first")
    parser.add_argument(
        "--fake", action="store_true", help="fake engines (checks the script, measures nothing)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "responses_chain.json")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hearth-chain-"))
    env = {"HEARTH_ADMIN_KEY": ADMIN, **({"HEARTH_MODELS": FAKE_MODELS} if args.fake else {})}
    port = free_port()
    server = start_hearth(root / "data", port, env=env)
    runs: dict[str, list[dict[str, Any]]] = {"responses": [], "chat": []}
    conversations: dict[str, list[list[str]]] = {"responses": [], "chat": []}
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/ready")
        key = httpx.post(
            base + "/admin/keys", json={"name": "bench"}, headers={"Authorization": f"Bearer {ADMIN}"}
        ).json()["secret"]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300) as client:
            for warm in range(args.warmup):
                for run in (via_responses, via_chat):
                    run(Conversation(client, args.model, args.max_tokens, session=10_000 + warm))
            for round_ in track(range(args.rounds), description="alternating responses / chat"):
                path = "responses" if round_ % 2 == 0 else "chat"
                flush_slots(client, args.model, args.slots)
                talk = Conversation(client, args.model, args.max_tokens, session=round_ // 2)
                ttft, usage, prefilled = (via_responses if path == "responses" else via_chat)(talk)
                runs[path].append(
                    {
                        "ttft_ms": ttft * 1000,
                        **usage,
                        "prefilled": usage["prompt"] - usage["cached"],
                        "conversation_prefilled": prefilled,
                    }
                )
                conversations[path].append(talk.answers)
        ledger = httpx.get(base + "/admin/usage", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    finally:
        stop(server)
    summary = {
        path: {
            m: median([float(r[m]) for r in rs])
            for m in ("ttft_ms", "prompt", "cached", "prefilled", "conversation_prefilled")
        }
        for path, rs in runs.items()
    }
    pairs = zip(conversations["responses"], conversations["chat"], strict=False)
    turns = [a == b for one, other in pairs for a, b in zip(one, other, strict=True)]
    same = f"{sum(turns)}/{len(turns)}"
    table = Table(
        "path",
        "last-turn TTFT ms",
        "prompt",
        "cached",
        "prefilled",
        "prefilled, 10 turns",
        title="median of rounds",
    )
    for path in ("responses", "chat"):
        s = summary[path]
        table.add_row(
            path,
            f"{s['ttft_ms']:.1f}",
            *(f"{s[m]:.0f}" for m in ("prompt", "cached", "prefilled", "conversation_prefilled")),
        )
    console.print(table)
    ratio = summary["responses"]["ttft_ms"] / summary["chat"]["ttft_ms"]
    console.print(f"TTFT responses/chat = {ratio:.2f}; ledger rows: {ledger['requests']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "args": {**vars(args), "out": str(args.out)},
        "summary": summary,
        "ttft_ratio": ratio,
        "identical_turns": same,
        "runs": runs,
        "ledger_requests": ledger["requests"],
    }
    args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
