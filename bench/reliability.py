"""Reliability figures for docs/reliability.md: kill, rolling restart, canary split, shadow cost.

3 ``hearth serve`` replicas (fake engines: 20 ms per token) on PostgreSQL and Redis behind nginx
with deploy/ha/nginx.conf.template, the same harness as tests/deploy/test_ha.py:

- **kill:** SIGKILL one replica under steady mixed load, start it again; count what clients saw;
- **rolling:** SIGTERM, wait, start each replica in turn under the same load;
- **canary:** ``--canary-requests`` requests through a canary route at ``--weight``; the share
  the candidate served (``x-hearth-variant``) against its 99 % binomial bound;
- **shadow:** the caller's latency through one route with and without a shadow, alternating
  rounds in one run (the shadow is a second fake model, ``fake-chat-v2``, of the same speed).

    PYTHONPATH=src:. .venv/bin/python -m bench.reliability [--only kill rolling canary shadow]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from tests.deploy.ha_cluster import (
    ADMIN,
    Cluster,
    LoadGenerator,
    LongStreams,
    client,
    nginx_binary,
    send,
    tally,
    wait_until,
)
from tests.services import POSTGRES_URL, REDIS_URL, drop_postgres_schema, fresh_postgres_schema_url

from bench.common import RESULTS

REPLICAS = 3
Z99 = 2.576


def _settled(cluster: Cluster, prefix: str, answered: int) -> dict[str, list[int]]:
    wait_until(lambda: sum(len(v) for v in cluster.ledger(prefix).values()) >= answered, timeout=15)
    return cluster.ledger(prefix)


def kill(cluster: Cluster, secret: str) -> dict[str, Any]:
    prefix = f"bkill-{uuid.uuid4().hex[:8]}"
    streams = LongStreams(cluster.url, secret, prefix, n=2 * REPLICAS).open()
    with LoadGenerator(cluster.url, secret, prefix) as load:
        wait_until(lambda: load.count() >= 60)
        cluster.kill(1)
        mark = load.count()
        wait_until(lambda: load.count() >= mark + 150, timeout=120)
        cluster.replicas[1].start()
        wait_until(lambda: load.count() >= mark + 250, timeout=120)
    outcomes = load.outcomes + streams.join()
    result = tally(outcomes, _settled(cluster, prefix, sum(o.answered for o in outcomes)))
    failed_plain = [o for o in result.failed if o.kind != "stream"]
    return {**result.as_dict(), "failed_non_streaming": len(failed_plain)}


def rolling(cluster: Cluster, secret: str) -> dict[str, Any]:
    prefix = f"broll-{uuid.uuid4().hex[:8]}"
    with LoadGenerator(cluster.url, secret, prefix) as load:
        wait_until(lambda: load.count() >= 60)
        for index in range(REPLICAS):
            cluster.restart(index)
            load.wait_for(40, timeout=120)
    result = tally(load.outcomes, _settled(cluster, prefix, sum(o.answered for o in load.outcomes)))
    return result.as_dict()


def _put_route(cluster: Cluster, alias: str, body: dict[str, Any]) -> None:
    reply = httpx.put(
        f"{cluster.url}/admin/routes/{alias}",
        json=body,
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    reply.raise_for_status()
    time.sleep(1.5)  # every replica picks the change up within a second


def canary(cluster: Cluster, secret: str, n: int, weight: float) -> dict[str, Any]:
    alias = f"canary-{uuid.uuid4().hex[:6]}"
    variants = [{"model": "fake-chat", "weight": 100 - weight}, {"model": "fake-chat-v2", "weight": weight}]
    _put_route(cluster, alias, {"strategy": "canary", "variants": variants})
    served: list[str | None] = []
    with client(cluster.url, secret) as http:
        for i in range(n):
            outcome = send(http, "chat", f"{alias}-{i}", model=alias, max_tokens=1)
            if not outcome.answered:
                raise RuntimeError(f"canary request failed: {outcome}")
            served.append(outcome.variant)
    p = weight / 100
    observed = served.count("fake-chat-v2") / n
    half = Z99 * math.sqrt(p * (1 - p) / n)
    return {
        "requests": n,
        "weight": weight,
        "observed": observed,
        "bound_99": [p - half, p + half],
        "within": p - half <= observed <= p + half,
        "other_variants": sorted({str(v) for v in served} - {"fake-chat", "fake-chat-v2"}),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def shadow(cluster: Cluster, secret: str, rounds: int, per_round: int, max_tokens: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    plain, shadowed = f"plain-{tag}", f"shadowed-{tag}"
    _put_route(cluster, plain, {"strategy": "canary", "variants": [{"model": "fake-chat", "weight": 100}]})
    _put_route(
        cluster,
        shadowed,
        {"strategy": "shadow", "variants": [{"model": "fake-chat"}], "shadow": "fake-chat-v2"},
    )
    latencies: dict[str, list[float]] = {plain: [], shadowed: []}
    with client(cluster.url, secret) as http:
        for _ in range(3):  # warm both routes
            for alias in latencies:
                send(http, "chat", f"warm-{alias}-{uuid.uuid4().hex[:6]}", model=alias, max_tokens=max_tokens)
        for r in range(rounds):
            order = [plain, shadowed] if r % 2 == 0 else [shadowed, plain]
            for alias in order:
                for i in range(per_round):
                    outcome = send(http, "chat", f"{alias}-{r}-{i}", model=alias, max_tokens=max_tokens)
                    if not outcome.answered:
                        raise RuntimeError(f"shadow bench request failed: {outcome}")
                    latencies[alias].append(outcome.latency_s * 1000)
    figures = {
        name: {
            "p50_ms": statistics.median(values),
            "p95_ms": _percentile(values, 0.95),
            "requests": len(values),
        }
        for name, values in (("without_shadow", latencies[plain]), ("with_shadow", latencies[shadowed]))
    }
    ratio = {
        "p50": figures["with_shadow"]["p50_ms"] / figures["without_shadow"]["p50_ms"],
        "p95": figures["with_shadow"]["p95_ms"] / figures["without_shadow"]["p95_ms"],
    }
    return {
        **figures,
        "ratio": ratio,
        "rounds": rounds,
        "max_tokens": max_tokens,
        "shadow_model": "fake-chat-v2",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", default=["kill", "rolling", "canary", "shadow"])
    parser.add_argument("--canary-requests", type=int, default=1000)
    parser.add_argument("--weight", type=float, default=20)
    parser.add_argument("--shadow-rounds", type=int, default=10)
    parser.add_argument("--shadow-per-round", type=int, default=30)
    parser.add_argument("--shadow-tokens", type=int, default=5)
    args = parser.parse_args()
    nginx = nginx_binary()
    if nginx is None:
        raise SystemExit("nginx is not installed (apt-get install nginx-light)")
    url, schema = fresh_postgres_schema_url()
    root = Path(tempfile.mkdtemp(prefix="hearth-reliability-"))
    cluster = Cluster(root, url, REDIS_URL)
    results: dict[str, Any] = {"postgres": POSTGRES_URL, "replicas": REPLICAS}
    try:
        cluster.start(REPLICAS)
        secret = cluster.create_key("bench")
        if "kill" in args.only:
            results["kill"] = kill(cluster, secret)
            print("kill", json.dumps(results["kill"]), flush=True)
        if "rolling" in args.only:
            results["rolling"] = rolling(cluster, secret)
            print("rolling", json.dumps(results["rolling"]), flush=True)
        if "canary" in args.only:
            results["canary"] = canary(cluster, secret, args.canary_requests, args.weight)
            print("canary", json.dumps(results["canary"]), flush=True)
        if "shadow" in args.only:
            results["shadow"] = shadow(
                cluster, secret, args.shadow_rounds, args.shadow_per_round, args.shadow_tokens
            )
            print("shadow", json.dumps(results["shadow"]), flush=True)
    finally:
        cluster.stop()
        drop_postgres_schema(schema)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "reliability.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
