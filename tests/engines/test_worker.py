"""The torch models' worker process: calls, errors, a worker that dies, and one that must not outlive the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hearth.config import default_models
from hearth.engines import worker
from hearth.engines.context import EngineContext
from hearth.engines.embeddings import SentenceTransformerEngine
from hearth.errors import EngineFailure

ROOT = Path(__file__).resolve().parents[2]
COUNTER = "tests.engines.worker_models:Counter"


@pytest.fixture(autouse=True)
def _worker_imports_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker imports the test models by module name, as it imports the engines' models."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def wait_until(condition: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def counter() -> Iterator[worker.ModelHost]:
    host = worker.ModelHost("counter", COUNTER, 10, mode="process")
    yield host
    host.close()


def test_a_model_runs_in_its_own_process_and_keeps_its_state(counter: worker.ModelHost) -> None:
    assert counter.describe == {"pid": counter.describe["pid"], "start": 10}
    assert counter.describe["pid"] != os.getpid()
    assert [counter.call("add", 1), counter.call("add", 5)] == [11, 16]


def test_calls_from_many_threads_each_get_their_own_answer(counter: worker.ModelHost) -> None:
    answers: dict[int, float] = {}

    def call(i: int) -> None:
        answers[i] = counter.call("sleep", i / 100)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {i: i / 100 for i in range(8)}


def test_an_error_in_the_model_is_an_engine_failure_that_names_it(counter: worker.ModelHost) -> None:
    with pytest.raises(EngineFailure, match="ValueError: no such thing"):
        counter.call("fail")
    assert counter.call("add", 1) == 11  # the worker is still serving


def test_a_model_that_fails_to_load_leaves_no_worker_behind() -> None:
    with pytest.raises(EngineFailure, match="RuntimeError: the weights are damaged"):
        worker.ModelHost("broken", "tests.engines.worker_models:Broken", mode="process")
    assert worker._shared is None


def test_models_share_one_worker_that_ends_with_the_last_of_them() -> None:
    first = worker.ModelHost("one", COUNTER, 1, mode="process")
    second = worker.ModelHost("two", COUNTER, 2, mode="process")
    pid = first.describe["pid"]
    assert second.describe["pid"] == pid
    first.close()
    assert alive(pid) and second.call("add", 1) == 3
    second.close()
    wait_until(lambda: not alive(pid), 10)


def test_a_killed_worker_fails_the_calls_in_flight_then_comes_back_by_itself(
    counter: worker.ModelHost,
) -> None:
    pid = counter.call("pid")
    errors: list[BaseException] = []

    def slow_call() -> None:
        try:
            counter.call("sleep", 30)
        except BaseException as exc:
            errors.append(exc)

    in_flight = threading.Thread(target=slow_call)
    in_flight.start()
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    in_flight.join(10)
    assert len(errors) == 1 and isinstance(errors[0], EngineFailure)
    assert f"pid {pid}" in str(errors[0]) and "signal 9" in str(errors[0])
    # The model loads again in a new worker without waiting for a request; until then, the
    # failure is what /ready reports (the registry asks every engine's failure()).
    wait_until(lambda: counter.failure is None)
    new_pid = counter.call("pid")
    assert new_pid != pid and counter.call("add", 1) == 11  # a fresh model, loaded from its spec


def test_the_worker_does_not_outlive_a_server_killed_with_sigkill(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from hearth.engines import worker
        host = worker.ModelHost("counter", {COUNTER!r}, 0, mode="process")
        print(host.describe["pid"], flush=True)
        time.sleep(60)
        """
    )
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert server.stdout is not None
    worker_pid = int(server.stdout.readline())
    assert alive(worker_pid)
    server.kill()
    server.wait()
    wait_until(lambda: not alive(worker_pid), 10)


def test_inline_mode_runs_the_model_in_this_process() -> None:
    host = worker.ModelHost("counter", COUNTER, 3, mode="inline")
    assert host.describe["pid"] == os.getpid() and host.call("add", 1) == 4
    host.close()


# -- the real embedding model ------------------------------------------------------------------

MINILM = next(spec for spec in default_models() if spec.id == "all-minilm-l6-v2")


def embed(engine: SentenceTransformerEngine, texts: list[str]) -> np.ndarray:
    import asyncio

    return asyncio.run(engine.embed(texts)).vectors


def test_minilm_in_the_worker_gives_the_vectors_it_gives_in_process(tmp_path: Path) -> None:
    texts = ["The cat sat on the mat.", "Hearth serves models on your own machine.", "短い文"]
    vectors = {}
    for mode in ("process", "inline"):
        engine = SentenceTransformerEngine(MINILM, EngineContext(tmp_path, torch_engines=mode))
        engine.load()
        vectors[mode] = embed(engine, texts)
        assert engine.dimensions == 384 and engine.count_tokens(["The cat sat"]) == [5]
        engine.close()
    np.testing.assert_allclose(vectors["process"], vectors["inline"], atol=1e-5)


def test_the_server_process_never_imports_torch_in_process_mode(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from hearth.config import ModelSpec
        from hearth.engines.context import EngineContext
        from hearth.engines.embeddings import SentenceTransformerEngine
        spec = ModelSpec.model_validate_json({MINILM.model_dump_json()!r})
        engine = SentenceTransformerEngine(spec, EngineContext(Path({str(tmp_path)!r})))
        engine.load()
        assert asyncio.run(engine.embed(["hello"])).vectors.shape == (1, 384)
        engine.close()
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "sentence_transformers")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
