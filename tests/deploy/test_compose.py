"""deploy/compose.yaml: its structure, and the file as podman-compose (PyPI) resolves it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.helpers import DEPLOY, ROOT, run, tool

COMPOSE = DEPLOY / "compose.yaml"


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def env_file(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return {k: v for k, v in pairs}


def test_services_profiles_and_healthchecks() -> None:
    services = load()["services"]
    assert set(services) == {"caddy", "hearth", "postgres", "redis"}
    assert "profiles" not in services["caddy"] and "profiles" not in services["hearth"]
    assert services["postgres"]["profiles"] == ["ha"] and services["redis"]["profiles"] == ["ha"]
    for name in ("hearth", "postgres", "redis"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"} and check["interval"] and check["retries"]
    assert "/ready" in " ".join(services["hearth"]["healthcheck"]["test"])
    # Caddy waits for a ready Hearth; Hearth for healthy PostgreSQL/Redis when the profile is on.
    assert services["caddy"]["depends_on"]["hearth"]["condition"] == "service_healthy"
    for dep in ("postgres", "redis"):
        assert services["hearth"]["depends_on"][dep] == {"condition": "service_healthy", "required": False}
    assert services["hearth"]["deploy"]["replicas"] == "${HEARTH_REPLICAS:-1}"
    # Only Caddy publishes ports; no container_name, so replicas can scale.
    assert "ports" not in services["hearth"] and all("container_name" not in s for s in services.values())


def test_referenced_files_exist() -> None:
    services = load()["services"]
    build = services["hearth"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT and (context / build["dockerfile"]).is_file()
    mounts = [v.split(":")[0] for v in services["caddy"]["volumes"] if v.startswith("./")]
    assert mounts == ["./Caddyfile"] and (DEPLOY / "Caddyfile").is_file()
    assert services["hearth"]["volumes"] == ["${HEARTH_DATA_MOUNT:-hearth-data:/data}"]
    # The Caddyfile reads the variables compose sets.
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    for variable in services["caddy"]["environment"]:
        assert "{$" + variable in caddyfile, variable


def test_ha_env_file() -> None:
    ha = env_file(DEPLOY / "ha.env")
    assert ha["COMPOSE_PROFILES"] == "ha" and int(ha["HEARTH_REPLICAS"]) >= 2
    assert ha["HEARTH_DATABASE_URL"].startswith("postgresql+psycopg://hearth:")
    assert "@postgres:5432/hearth" in ha["HEARTH_DATABASE_URL"]
    assert ha["HEARTH_DATABASE_URL"].split(":")[2].split("@")[0] == ha["POSTGRES_PASSWORD"]
    assert ha["HEARTH_REDIS_URL"].startswith("redis://redis:6379")
    # Replicas never share /data: an anonymous volume each (a bare container path).
    assert ha["HEARTH_DATA_MOUNT"] == "/data"
    # Every variable compose interpolates or passes through is one Hearth or Caddy knows.
    text = COMPOSE.read_text()
    used = set(re.findall(r"\$\{(\w+)", text)) | set(re.findall(r"^\s+- (HEARTH_\w+)$", text, re.M))
    assert set(ha) - {"COMPOSE_PROFILES"} <= used


def test_podman_compose_resolves_the_file(tmp_path: Path) -> None:
    podman_compose = tool("podman-compose")
    plain = run(podman_compose, "-f", str(COMPOSE), "config", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    resolved = yaml.safe_load(plain.stdout)
    assert set(resolved["services"]) == {"caddy", "hearth"}  # the ha profile is off by default
    assert str(resolved["services"]["hearth"]["deploy"]["replicas"]) == "1"
    assert resolved["services"]["caddy"]["environment"]["HEARTH_DOMAIN"] == "localhost"

    ha = run(podman_compose, "-f", str(COMPOSE), "--env-file", str(DEPLOY / "ha.env"), "config", cwd=tmp_path)
    assert ha.returncode == 0, ha.stderr
    resolved = yaml.safe_load(ha.stdout)
    assert set(resolved["services"]) == {"caddy", "hearth", "postgres", "redis"}
    assert str(resolved["services"]["hearth"]["deploy"]["replicas"]) == "2"
    assert resolved["services"]["hearth"]["deploy"]["mode"] == "replicated"  # podman-compose needs it
