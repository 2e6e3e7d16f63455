"""The deployment guides match the shipped files: paths, commands, variables and excerpts exist.

Also the files the guides ship that no other test runs: deploy/cloud-init.yaml, the systemd
units (``systemd-analyze verify`` where systemd is installed), .dockerignore and the scripts.
"""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from hearth.cli import app
from hearth.config import Settings
from tests.deploy.helpers import DEPLOY, DOCS, ROOT, run

GUIDES = [
    "cloud-vm.md",
    "edge.md",
    "systemd.md",
    "kubernetes.md",
    "compose.md",
    "containers.md",
    "backups.md",
    "observability.md",
    "ha.md",
    "upstream.md",
]
CLIENT_VARIABLES = {"HEARTH_BASE_URL", "HEARTH_API_KEY"}


def guide_paths() -> list[Path]:
    return [DOCS / name for name in [*GUIDES, "README.md"]]


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```[^\n]*\n(.*?)```", text, re.S)


@cache
def cli_commands() -> dict[str, set[str]]:
    """Every `hearth` command, with the subcommands of groups (keys, db, models)."""
    group: Any = typer.main.get_command(app)
    return {name: set(getattr(command, "commands", {})) for name, command in group.commands.items()}


def known_variables() -> set[str]:
    fields = {f"HEARTH_{name.upper()}" for name in Settings.model_fields}
    shipped = set()
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.suffix != ".whl":
            shipped |= set(re.findall(r"HEARTH_[A-Z_]+[A-Z]", path.read_text(errors="replace")))
    return fields | shipped | CLIENT_VARIABLES


def test_every_guide_exists_and_is_indexed() -> None:
    index = (DOCS / "README.md").read_text()
    for name in GUIDES:
        assert (DOCS / name).is_file(), name
        assert f"({name})" in index, name


@pytest.mark.parametrize("guide", guide_paths(), ids=lambda p: p.name)
def test_paths_in_guides_exist(guide: Path) -> None:
    text = guide.read_text()
    paths = set(re.findall(r"(?<![\w/.$-])((?:deploy|docs|tests|src)/[\w./-]*[\w/])", text))
    assert paths or guide.name == "edge.md"
    missing = [p for p in sorted(paths) if not (ROOT / p).exists()]
    assert not missing, missing


@pytest.mark.parametrize("guide", guide_paths(), ids=lambda p: p.name)
def test_hearth_commands_in_guides_exist(guide: Path) -> None:
    commands = cli_commands()
    text = guide.read_text()
    used = 0
    for block in [*code_blocks(text), *re.findall(r"`([^`\n]+)`", text)]:
        for line in block.replace("\\\n", " ").splitlines():
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError:
                tokens = line.split()
            for i, token in enumerate(tokens[:-1]):
                if token != "hearth" and not token.endswith("/bin/hearth"):
                    continue
                if i and tokens[i - 1] in {"exec", "--name", "-u", "-t"}:
                    continue  # a container, user or image named hearth
                name = tokens[i + 1]
                if not re.fullmatch(r"[a-z]+", name):
                    continue
                assert name in commands, f"`hearth {name}` in {guide.name} is not a command"
                sub = re.sub(r"[^\w-].*$", "", tokens[i + 2]) if i + 2 < len(tokens) else ""
                if commands[name] and not sub.startswith("-"):
                    assert sub in commands[name], f"`hearth {name} {sub}` in {guide.name}"
                used += 1
    assert used or guide.name in {"README.md"}


@pytest.mark.parametrize("guide", guide_paths(), ids=lambda p: p.name)
def test_variables_in_guides_are_real(guide: Path) -> None:
    mentioned = set(re.findall(r"HEARTH_[A-Z_]+[A-Z]", guide.read_text()))
    unknown = mentioned - known_variables()
    assert not unknown, unknown


@pytest.mark.parametrize("guide", guide_paths(), ids=lambda p: p.name)
def test_excerpts_match_the_shipped_files(guide: Path) -> None:
    """A code block starting with ``# deploy/FILE`` shows lines that FILE really has, in order."""
    for block in code_blocks(guide.read_text()):
        first, _, rest = block.partition("\n")
        match = re.fullmatch(r"# (deploy/\S+)", first.strip())
        if not match:
            continue
        shipped = [line.strip() for line in (ROOT / match.group(1)).read_text().splitlines()]
        position = 0
        for line in (line.strip() for line in rest.splitlines()):
            if not line:
                continue
            assert line in shipped[position:], f"{guide.name}: {line!r} is not in {match.group(1)}"
            position = shipped.index(line, position) + 1


def test_make_targets_in_guides_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for guide in guide_paths():
        for target in re.findall(r"\bmake ([a-z][\w-]*)", guide.read_text()):
            assert re.search(rf"^{target}:", makefile, re.M), (guide.name, target)


def test_guides_name_the_key_commands() -> None:
    cloud = (DOCS / "cloud-vm.md").read_text()
    for needle in ("--restart unless-stopped -p 8000:8000 -v hearth-data:/data", "hearth db backup", "ufw"):
        assert needle in cloud
    edge = (DOCS / "edge.md").read_text()
    for needle in ("DDNS", "port forwarding", "WireGuard", "Cloudflare Tunnel", "hearth doctor"):
        assert needle in edge
    containers = (DOCS / "containers.md").read_text()
    assert "--platform linux/amd64,linux/arm64" in containers
    assert "https://download.pytorch.org/whl/cpu" in containers


# --- cloud-init --------------------------------------------------------------------------------


def cloud_init() -> dict[str, object]:
    text = (DEPLOY / "cloud-init.yaml").read_text()
    assert text.startswith("#cloud-config\n")
    data: dict[str, object] = yaml.safe_load(text)
    return data


def test_cloud_init_references_real_files_and_commands(tmp_path: Path) -> None:
    data = cloud_init()
    packages = data["packages"]
    assert isinstance(packages, list) and {"docker.io", "ufw"} <= set(packages)
    files = {f["path"]: f for f in data["write_files"]}  # type: ignore[attr-defined]
    for entry in data["runcmd"]:  # type: ignore[attr-defined]
        program = entry[0] if isinstance(entry, list) else shlex.split(entry)[0]
        assert program in files or program in {"ufw", "systemctl"}, program
        if program in files:
            assert files[program]["permissions"] == "0755"
    scripts = {path: f["content"] for path, f in files.items() if f["content"].startswith("#!")}
    assert set(scripts) == {"/usr/local/sbin/hearth-update", "/etc/cron.daily/hearth-backup"}
    for path, content in scripts.items():
        script = tmp_path / Path(path).name
        script.write_text(content)
        assert run("sh", "-n", str(script)).returncode == 0, path
        # Every file a script reads is written by cloud-init too.
        for used in re.findall(r"(/etc/hearth/[\w.-]+)", content):
            assert used in files, used
    update = scripts["/usr/local/sbin/hearth-update"]
    assert "docker run -d --name hearth --restart unless-stopped -p 8000:8000 -v hearth-data:/data" in update
    for script in scripts.values():
        for line in script.splitlines():
            if "hearth hearth " in line:  # docker exec <container> hearth <command>
                name, sub = line.split("hearth hearth ", 1)[1].split()[:2]
                assert sub in cli_commands()[name], line
    settings_env = files["/etc/hearth/hearth.env"]["content"]
    for variable in re.findall(r"^(HEARTH_\w+)=", settings_env, re.M):
        assert variable.removeprefix("HEARTH_").lower() in Settings.model_fields
    guide = (DOCS / "cloud-vm.md").read_text()
    for path in (*scripts, "/etc/hearth/deploy.env", "/etc/hearth/hearth.env"):
        assert path in guide, path


# --- systemd -----------------------------------------------------------------------------------

UNITS = ["hearth.service", "hearth-backup.service", "hearth-backup.timer"]


def test_systemd_units_structure() -> None:
    for name in UNITS:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment, method-assign]
        parser.read(DEPLOY / "systemd" / name)
        assert "Unit" in parser, name
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment, method-assign]
    unit.read(DEPLOY / "systemd" / "hearth.service")
    service = unit["Service"]
    assert service["ExecStart"] == "/opt/hearth/venv/bin/hearth serve"
    assert service["User"] == "hearth" and service["StateDirectory"] == "hearth"
    assert service["Restart"] == "on-failure" and unit["Install"]["WantedBy"] == "multi-user.target"
    text = (DEPLOY / "systemd" / "hearth.service").read_text()
    assert "Environment=HEARTH_DATA_DIR=/var/lib/hearth" in text
    backup = (DEPLOY / "systemd" / "hearth-backup.service").read_text()
    assert "ExecStart=/opt/hearth/venv/bin/hearth db backup" in backup
    assert "backup" in cli_commands()["db"]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (the structure test still ran)")
    hearth = Path(sys.executable).with_name("hearth")
    assert hearth.exists()
    for name in UNITS:  # the venv's real hearth stands in for /opt/hearth/venv/bin/hearth
        text = (DEPLOY / "systemd" / name).read_text().replace("/opt/hearth/venv/bin/hearth", str(hearth))
        (tmp_path / name).write_text(text)
    result = run("systemd-analyze", "verify", "--man=no", *UNITS, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    complaints = [line for line in result.stderr.splitlines() if "hearth" in line]
    assert not complaints, complaints


# --- .dockerignore and scripts ---------------------------------------------------------------------


def test_dockerignore_keeps_the_context_small() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip()[:1] not in {"", "#"}
    ]
    for excluded in (".git", ".venv", "**/node_modules", "**/__pycache__", ".mypy_cache", "tests"):
        assert excluded in rules, excluded
    assert "!deploy/wheels" in rules
    for needed in ("src", "pyproject.toml", "README.md"):
        assert needed not in rules
    containerfile = (DEPLOY / "Containerfile").read_text()
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", containerfile, re.M):
        for source in copied.split():
            assert (ROOT / source).exists(), source


def test_scripts_parse() -> None:
    for script in sorted((DEPLOY / "scripts").glob("*.sh")):
        assert run("bash", "-n", str(script)).returncode == 0, script
        assert script.stat().st_mode & 0o111, f"{script} is not executable"


def test_setup_podman_edits_containers_conf_idempotently(tmp_path: Path) -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    conf = tmp_path / "containers.conf"
    conf.write_text('[engine]\nevents_logger = "file"\ncgroup_manager = "systemd"\n')
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINERS_CONF_FILE": str(conf), "HOME": str(tmp_path)}
    for _ in range(2):
        result = run("bash", str(DEPLOY / "scripts" / "setup-podman.sh"), env=env, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    text = conf.read_text()
    assert text.count("[engine]") == 1 and text.count("[containers]") == 1
    assert 'cgroup_manager = "cgroupfs"' in text and 'cgroup_manager = "systemd"' not in text
    assert 'events_logger = "file"' in text and 'runtime = "runc"' in text and "default_ulimits = []" in text


def test_the_upstream_guides_configs_are_valid_models() -> None:
    from hearth.config import ModelSpec

    text = (DOCS / "upstream.md").read_text() + (ROOT / "README.md").read_text()
    found = 0
    for block in code_blocks(text):
        try:
            doc = yaml.safe_load(block)
        except yaml.YAMLError:
            continue
        entries = doc.get("models", []) if isinstance(doc, dict) else doc if isinstance(doc, list) else []
        for entry in entries:
            if isinstance(entry, dict) and entry.get("backend") in ("openai", "anthropic"):
                assert ModelSpec.model_validate(entry).upstream
                found += 1
    assert found >= 6
