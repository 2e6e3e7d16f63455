"""How a user reaches this server: the URL a browser opens, and the commands that work from their
shell. The start-up banner and the playground's sign-in page say the same words from here.
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import sys
from pathlib import Path

from hearth.config import Settings, default_data_dir


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach the server (a wildcard bind reaches every interface)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def in_checkout() -> bool:
    """Whether the server runs from a Hearth checkout, where `make key` and `make chat` work."""
    return Path("Makefile").is_file() and Path("src/hearth").is_dir()


def browser_host(host: str) -> str:
    """A host a browser on this machine can open: a wildcard bind is reached on loopback."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "[::1]"
    return f"[{host}]" if address.version == 6 else host


def hearth_command(argv0: str | None = None, cwd: Path | None = None) -> str:
    """How the user can run this same ``hearth`` from their shell (``hearth`` only if on PATH)."""
    argv0 = argv0 if argv0 is not None else sys.argv[0]
    cwd = cwd or Path.cwd()
    here = Path(argv0)
    if here.name in ("__main__.py", "-m") or argv0.endswith("hearth/cli/__main__.py"):
        return f"{_shortest(Path(sys.executable), cwd)} -m hearth.cli"
    on_path = shutil.which("hearth")
    if on_path and here.name == "hearth" and Path(on_path).resolve() == here.resolve():
        return "hearth"
    return _shortest(here, cwd)


def _shortest(path: Path, cwd: Path) -> str:
    absolute = path if path.is_absolute() else (cwd / path)
    try:
        return shlex.quote(str(absolute.relative_to(cwd)))
    except ValueError:
        return shlex.quote(str(absolute))


def key_command(settings: Settings, command: str) -> str:
    """The command that makes a key for *this* server: same data dir or database, same config."""
    env = []
    if settings.database_url:
        env.append("HEARTH_DATABASE_URL=...")  # the same URL; never printed, it may hold a password
    elif settings.data_dir.resolve() != default_data_dir().resolve():
        env.append(f"HEARTH_DATA_DIR={shlex.quote(str(settings.data_dir))}")
    config = f" --config {shlex.quote(str(settings.config))}" if settings.config else ""
    return " ".join([*env, f"{command} keys create me{config}"])
