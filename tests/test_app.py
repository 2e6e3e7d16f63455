"""The composition root: ``build_app`` builds everything it uses and sets nothing process-wide,
so two apps in one process (tests, a benchmark beside a server) share no state."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hearth.app import build_app
from tests.helpers.apps import fake_settings


def _module_state() -> dict[str, dict[str, Any]]:
    """Every hearth module's plain module-level values (ints, strings, flags...)."""
    plain = (bool, int, float, str, type(None))
    return {
        name: {k: v for k, v in vars(module).items() if isinstance(v, plain) and not k.startswith("__")}
        for name, module in list(sys.modules.items())
        if name.startswith("hearth") and module is not None
    }


def test_two_apps_share_no_state(tmp_path: Path) -> None:
    first = build_app(fake_settings(tmp_path / "a", compute_sharing="turns"))
    before = _module_state()
    second = build_app(fake_settings(tmp_path / "b", compute_sharing="parallel", torch_engines="inline"))
    assert _module_state() == before  # building an app changed no module's globals
    one, two = first.state.registry.context, second.state.registry.context
    assert one.compute is not two.compute
    assert (one.compute.enabled, two.compute.enabled) == (True, False)
    assert (one.torch_engines, two.torch_engines) == ("process", "inline")
    assert first.state.services.gateway is not second.state.services.gateway
    assert first.state.root.database is not second.state.root.database


def test_every_service_the_routes_use_is_built_once(tmp_path: Path) -> None:
    app = build_app(fake_settings(tmp_path))
    root, services = app.state.root, app.state.services
    assert services is root.services and services.gateway is root.gateway
    assert services.responses is root.responses and services.replicas is root.replicas
