"""Fuzzing every route of every family from Hearth's own OpenAPI description (schemathesis): a
live ``hearth serve`` on the fake engines, called with no key, with a user's key and with the
admin key, answers every generated request without a server error (no 5xx but the 503 a
not-yet-loaded model may give), in the family's own error shape.

This is the fast subset CI runs (a few examples per operation); ``make soak`` runs the same with
``HEARTH_FUZZ_EXAMPLES`` in the hundreds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.helpers.fake_server import ADMIN, FakeHearth

EXAMPLES = int(os.environ.get("HEARTH_FUZZ_EXAMPLES", "6"))
# Rotating the admin key would lock the rest of the run out: its own tests cover it.
EXCLUDED = "/admin/admin-key/rotate"


@pytest.fixture(scope="module")
def hearth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHearth]:
    server = FakeHearth(Path(tmp_path_factory.mktemp("fuzz"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def callers(hearth: FakeHearth) -> list[dict[str, str]]:
    """No key, a user's key, the admin key: each generated request is sent as all three."""
    return [
        {},
        {"Authorization": f"Bearer {hearth.create_key('fuzz-user')}"},
        {"Authorization": f"Bearer {ADMIN}"},
    ]


def operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if op.path != EXCLUDED]


def test_no_route_answers_with_a_server_error(hearth: FakeHearth, callers: list[dict[str, str]]) -> None:
    ops = operations(hearth.url)
    assert len(ops) >= 40  # every family's routes are described

    def check(case: Any) -> None:
        for caller in callers:
            response = case.call(base_url=hearth.url, headers=caller, timeout=60)
            said = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
            assert response.status_code < 500 or response.status_code == 503, said
            if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                # OpenAI, Anthropic and the admin routes: {"error": {...}}; Ollama and OIP v2:
                # {"error": "..."}.
                body = response.json()
                assert isinstance(body, dict) and "error" in body, said

    failures = []
    for operation in ops:
        run = settings(
            max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck), print_blob=False,
        )(given(case=operation.as_strategy())(check))  # fmt: skip
        try:
            run()
        except Exception as failure:  # every operation is tried; all failures are shown
            failures.append(f"{operation.method.upper()} {operation.path}: {failure!r}"[:800])
    assert not failures, "\n".join(failures)
