"""One live ``hearth serve`` with the real default models, shared by the real-model tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live import LiveServer


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("real")
    with LiveServer(root / "data", "--no-auth", ready_timeout=300) as server:
        yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/real/" in str(item.fspath):
            item.add_marker(pytest.mark.real)
