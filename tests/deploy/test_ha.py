"""High availability for real: 3 ``hearth serve`` replicas on PostgreSQL and Redis behind nginx.

The load balancer is Debian's nginx with the config rendered from deploy/ha/nginx.conf.template;
a bounded load generator (threads, one request at a time each) sends non-streaming chat,
streaming chat and embeddings, each with its own x-request-id, through it on loopback. Then:
a replica is killed with SIGKILL, every replica is restarted in turn with SIGTERM, and the
clients' view is reconciled with the usage ledger and with shared rate limits.
"""

from __future__ import annotations

import concurrent.futures
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.deploy.ha_cluster import (
    Cluster,
    LoadGenerator,
    LongStreams,
    binary,
    chat_body,
    client,
    tally,
    wait_until,
)
from tests.deploy.helpers import unavailable
from tests.helpers.services import drop_postgres_schema, fresh_postgres_schema_url, redis_url

pytestmark = pytest.mark.cluster

REPLICAS = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    for name, package in (("nginx", "nginx-light"), ("haproxy", "haproxy")):
        if binary(name) is None:
            unavailable(f"{name} is not installed (make system-deps: {package})")
    redis = redis_url()
    url, schema = fresh_postgres_schema_url()
    running = Cluster(tmp_path_factory.mktemp("ha"), url, redis)
    try:
        yield running.start(REPLICAS)
    finally:
        running.stop()
        drop_postgres_schema(schema)


@pytest.fixture(scope="module")
def secret(cluster: Cluster) -> str:
    return cluster.create_key("ha-load")


def _upstream(cluster: Cluster, index: int) -> str:
    return f"127.0.0.1:{cluster.replicas[index].port}"


def _settle(cluster: Cluster, prefix: str, expected: int) -> dict[str, list[int]]:
    # Durable mode commits each row before its answer goes out, so they are all there already;
    # the short wait only covers rows of cut streams a dying replica may still have in flight.
    wait_until(lambda: sum(len(v) for v in cluster.ledger(prefix).values()) >= expected, timeout=10)
    return cluster.ledger(prefix)


def test_rendered_config_is_valid_nginx(cluster: Cluster) -> None:
    assert cluster.lb is not None
    checked = cluster.lb.check()
    assert checked.returncode == 0, checked.stderr
    text = cluster.lb.config.read_text()
    for directive in (
        "proxy_buffering off;",
        "proxy_next_upstream error timeout http_502 http_503 non_idempotent;",
        f"proxy_next_upstream_tries {REPLICAS};",
        "proxy_set_header X-Request-Id $hearth_request_id;",
        "daemon off;",
    ):
        assert directive in text
    assert text.count("max_fails=1") == REPLICAS


def test_request_ids_and_streams_pass_through_unbuffered(cluster: Cluster, secret: str) -> None:
    with client(cluster.url, secret) as http:
        request_id = f"passthrough-{uuid.uuid4().hex}"
        reply = http.post(
            "/v1/chat/completions", json=chat_body("chat", "hi"), headers={"x-request-id": request_id}
        )
        assert reply.status_code == 200 and reply.headers["x-request-id"] == request_id
        assert reply.headers["x-hearth-variant"] == "fake-chat"
        # Without one, the client still gets an id: nginx's, which Hearth echoes.
        assert len(http.get("/v1/models").headers["x-request-id"]) == 32
        arrivals: list[float] = []
        started = time.perf_counter()
        with http.stream(
            "POST", "/v1/chat/completions", json=chat_body("stream", "hi", max_tokens=25)
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: {"):
                    arrivals.append(time.perf_counter() - started)
    # Tokens come every 20 ms; buffered, they would all arrive together at the end.
    assert arrivals[-1] - arrivals[0] >= 0.25, arrivals
    # Round robin over every replica.
    with client(cluster.url, secret) as http:
        served = {http.get("/v1/models").headers["x-upstream"] for _ in range(2 * REPLICAS)}
    assert served == {_upstream(cluster, i) for i in range(REPLICAS)}


def test_kill_one_replica_under_load(cluster: Cluster, secret: str) -> None:
    prefix = f"kill-{uuid.uuid4().hex[:8]}"
    victim = 1
    streams = LongStreams(cluster.url, secret, prefix, n=2 * REPLICAS).open()
    with LoadGenerator(cluster.url, secret, prefix) as load:
        wait_until(lambda: load.count() >= 30)
        cluster.kill(victim)
        before = load.count()
        wait_until(lambda: load.count() >= before + 60)  # steady load on the survivors
        cluster.replicas[victim].start()  # back for the tests after this one
        wait_until(lambda: load.count() >= before + 90)
    longs = streams.join()
    outcomes = load.outcomes + longs

    # Non-streaming requests: none failed, including those in flight on the victim (retried).
    failed = [o for o in outcomes if not o.answered and not o.cut]
    assert failed == [], failed[:5]
    # Streams the kill cut are visibly cut (no finish_reason / [DONE]); all others finished.
    on_victim = [o for o in longs if o.upstream == _upstream(cluster, victim)]
    assert on_victim and all(o.cut for o in on_victim), longs
    assert all(o.answered for o in longs if o not in on_victim), longs
    assert all(o.kind == "stream" for o in outcomes if o.cut)

    result = tally(outcomes, _settle(cluster, prefix, sum(o.answered for o in outcomes)))
    assert result.duplicates == [] and result.strays == []
    assert result.answered_with_one_row == result.answered, result.as_dict()
    assert result.cut >= len(on_victim)


def test_rolling_restart_under_load_fails_nothing(cluster: Cluster, secret: str) -> None:
    prefix = f"roll-{uuid.uuid4().hex[:8]}"
    for replica in cluster.replicas:  # the previous test's restarted replica is back in rotation
        assert httpx.get(replica.url + "/ready", timeout=5).status_code == 200
    with LoadGenerator(cluster.url, secret, prefix) as load:
        wait_until(lambda: load.count() >= 20)
        for index in range(REPLICAS):
            cluster.restart(index)
            load.wait_for(15)
    result = tally(load.outcomes, _settle(cluster, prefix, sum(o.answered for o in load.outcomes)))
    assert result.failed == [], [vars(o) for o in result.failed[:5]]
    assert result.cut == 0 and result.streams > 0
    assert result.answered == result.requests
    assert result.duplicates == [] and result.strays == []
    assert result.answered_with_one_row == result.requests, result.as_dict()


def _burst(cluster: Cluster, secret: str, n: int, body: dict[str, object]) -> list[int]:
    def one(_: int) -> int:
        with client(cluster.url, secret) as http:
            return http.post("/v1/chat/completions", json=body).status_code

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        return list(pool.map(one, range(n)))


def _clear_of_minute_boundary() -> None:
    # Requests per minute are a sliding window over clock minutes: a burst that straddles the
    # boundary may see the previous minute weigh a little less. Start well inside one.
    if time.time() % 60 > 52:
        time.sleep(61 - time.time() % 60)


def test_requests_per_minute_hold_across_replicas(cluster: Cluster) -> None:
    rpm = 12
    secret = cluster.create_key(f"rpm-{uuid.uuid4().hex[:6]}", rpm=rpm)
    _clear_of_minute_boundary()
    statuses = _burst(cluster, secret, REPLICAS * rpm * 2, chat_body("chat", "hi", max_tokens=1))
    assert statuses.count(200) == rpm, statuses
    assert statuses.count(429) == len(statuses) - rpm


def test_tokens_per_minute_hold_across_replicas(cluster: Cluster) -> None:
    body = chat_body("chat", "hi", max_tokens=10)
    probe = cluster.create_key(f"probe-{uuid.uuid4().hex[:6]}")
    with client(cluster.url, probe) as http:
        usage = http.post("/v1/chat/completions", json=body).json()["usage"]
    per_request = usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == 10  # the fake engine uses all it reserved: no refunds
    admitted = 7
    secret = cluster.create_key(f"tpm-{uuid.uuid4().hex[:6]}", tpm=admitted * per_request)
    statuses = _burst(cluster, secret, REPLICAS * admitted * 2, body)
    # A per-replica count would admit up to 3x; the shared window admits exactly the quota.
    assert statuses.count(200) == admitted, statuses
    assert statuses.count(429) == len(statuses) - admitted


def test_haproxy_takes_a_draining_replica_out_on_its_ready_check(cluster: Cluster, secret: str) -> None:
    """The HAProxy alternative probes /ready: SIGTERM takes a replica out before it stops serving."""
    interval_ms = 200
    haproxy = cluster.balancer("haproxy", check_interval_ms=interval_ms)
    cluster.extra_balancers.append(haproxy)
    checked = haproxy.check()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    haproxy.start()
    wait_until(lambda: _all_served(haproxy.url, secret, cluster))  # every replica checked up
    prefix = f"haproxy-{uuid.uuid4().hex[:8]}"
    draining = _upstream(cluster, 0)
    with LoadGenerator(haproxy.url, secret, prefix) as load:
        wait_until(lambda: load.count() >= 20)
        process = cluster.replicas[0].process
        assert process is not None
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        mark = load.count()
        wait_until(lambda: load.count() >= mark + 15)
        cluster.replicas[0].start()
        wait_until(lambda: any(o.upstream == draining and o.started > signalled + 3 for o in load.outcomes))
    # The replica served on for the shutdown delay, but HAProxy stopped sending it new requests
    # within a check or two: /ready had failed at once.
    late = [
        o
        for o in load.outcomes
        if o.upstream == draining
        and signalled + 4 * interval_ms / 1000 < o.started < signalled + cluster.shutdown_delay_s
    ]
    assert late == [], late[:3]
    result = tally(load.outcomes, _settle(cluster, prefix, sum(o.answered for o in load.outcomes)))
    assert result.failed == [] and result.cut == 0, [vars(o) for o in result.failed[:5]]
    assert result.answered_with_one_row == result.requests, result.as_dict()


def test_haproxy_keeps_each_prompt_cache_key_on_one_replica(cluster: Cluster, secret: str) -> None:
    """Agents that name a prompt cache land on the replica that holds it; others still spread."""
    haproxy = cluster.balancer("haproxy")
    cluster.extra_balancers.append(haproxy)
    assert haproxy.check().returncode == 0
    haproxy.start()
    wait_until(lambda: _all_served(haproxy.url, secret, cluster))  # no key: every replica, in turn
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    homes: dict[str, str | None] = {}
    with client(haproxy.url, secret) as http:
        for key in (f"agent-{i}" for i in range(12)):
            served = set()
            for path, payload in (
                ("/v1/chat/completions", body),
                ("/v1/responses", {"model": "fake-chat", "input": "hi", "max_output_tokens": 2}),
            ):
                for _ in range(3):
                    reply = http.post(path, json={**payload, "prompt_cache_key": key})
                    assert reply.status_code == 200, reply.text
                    served.add(reply.headers.get("x-upstream"))
            assert len(served) == 1, (key, served)
            homes[key] = served.pop()
    assert len(set(homes.values())) >= 2, homes  # the keys are spread over the replicas


def _all_served(url: str, secret: str, cluster: Cluster) -> bool:
    with client(url, secret) as http:
        served = {http.get("/v1/models").headers.get("x-upstream") for _ in range(2 * REPLICAS)}
    return served == {_upstream(cluster, i) for i in range(REPLICAS)}
