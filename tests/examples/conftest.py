"""A live fake-engine server for the example scripts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.fake_server import FakeHearth


@pytest.fixture(scope="module")
def hearth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHearth]:
    server = FakeHearth(tmp_path_factory.mktemp("examples")).start()
    yield server
    server.stop()
