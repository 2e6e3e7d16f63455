"""Deployment tests: the container image, Caddy, compose, Kubernetes, guides and tools.

Select them with ``pytest -m deploy`` (all), ``-m container`` (the podman image build and run)
or ``-m cluster`` (several replicas behind a load balancer); the markers are in pyproject.toml.
"""

from __future__ import annotations

import pytest

from tests.deploy.helpers import build_image


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/deploy/" in str(item.fspath):
            item.add_marker(pytest.mark.deploy)


@pytest.fixture(scope="session")
def image() -> str:
    """localhost/hearth:test, built from deploy/Containerfile once per session (several tests run it)."""
    return build_image()
