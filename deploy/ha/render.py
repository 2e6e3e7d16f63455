#!/usr/bin/env python3
"""Render deploy/ha/nginx.conf.template for a list of Hearth replicas (standard library only).

    python3 deploy/ha/render.py --prefix /srv/hearth-lb --listen 8080 \\
        127.0.0.1:8001 127.0.0.1:8002 127.0.0.1:8003

writes PREFIX/nginx.conf (and PREFIX/tmp/); then ``nginx -p PREFIX -c PREFIX/nginx.conf``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf.template")


def render(
    replicas: list[str],
    prefix: Path,
    listen: str = "8080",
    *,
    workers: int = 1,
    fail_timeout_s: int = 2,
    read_timeout_s: int = 600,
    max_body: str = "16m",
) -> str:
    """The config text; ``replicas`` are ``host:port`` of each ``hearth serve``."""
    if not replicas:
        raise ValueError("at least one replica")
    servers = "\n".join(
        f"        server {r} max_fails=1 fail_timeout={fail_timeout_s}s;" for r in replicas
    )
    values = dict(
        prefix=str(prefix.resolve()),
        listen=listen,
        workers=str(workers),
        servers=servers,
        # Every replica once: a request fails only when all of them did.
        tries=str(len(replicas)),
        read_timeout=f"{read_timeout_s}s",
        max_body=max_body,
    )
    # Only ``${name}`` is ours; nginx's own ``$variables`` are left alone.
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    left = re.findall(r"\$\{(\w+)\}", text)
    if left:
        raise ValueError(f"unfilled placeholders in {TEMPLATE.name}: {sorted(set(left))}")
    return text


def write(replicas: list[str], prefix: Path, listen: str = "8080", **options: int | str) -> Path:
    """Render into ``prefix/nginx.conf`` and create the temp folders nginx expects."""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    path = prefix / "nginx.conf"
    path.write_text(render(replicas, prefix, listen, **options))  # type: ignore[arg-type]
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("replicas", nargs="+", help="host:port of each hearth serve")
    parser.add_argument("--prefix", type=Path, required=True, help="nginx's folder (config, logs, temp)")
    parser.add_argument("--listen", default="8080", help="nginx's listen directive (default 8080)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--fail-timeout", type=int, default=2, help="seconds a failed replica is left out")
    args = parser.parse_args(argv)
    path = write(args.replicas, args.prefix, args.listen, workers=args.workers, fail_timeout_s=args.fail_timeout)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
