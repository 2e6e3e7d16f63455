"""Deployment tests: the container image, Caddy, compose, Kubernetes, guides and tools.

Select them with ``pytest -m deploy`` (all) or ``-m container`` (the podman image build and run).
"""

from __future__ import annotations

import pytest

from tests.deploy.helpers import build_image


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deploy: deployment files and guides (deploy/, docs/deploy/)")
    config.addinivalue_line("markers", "container: builds and runs the container image with podman")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/deploy/" in str(item.fspath):
            item.add_marker(pytest.mark.deploy)


@pytest.fixture(scope="session")
def image() -> str:
    """localhost/hearth:test, built from deploy/Containerfile once per session (several tests run it)."""
    return build_image()
