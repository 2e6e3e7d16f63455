"""One live fake-engine server for every client and CLI test in this folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clients.fake_server import FakeHearth


@pytest.fixture(scope="session")
def hearth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHearth]:
    server = FakeHearth(tmp_path_factory.mktemp("clients")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api_key(hearth: FakeHearth) -> str:
    return hearth.create_key("clients-default")
