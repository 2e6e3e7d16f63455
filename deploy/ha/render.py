#!/usr/bin/env python3
"""Render the load balancer config for a list of Hearth replicas (standard library only).

    python3 deploy/ha/render.py --prefix /srv/hearth-lb --listen 8080 \\
        127.0.0.1:8001 127.0.0.1:8002 127.0.0.1:8003

writes PREFIX/nginx.conf (and PREFIX/tmp/); then ``nginx -p PREFIX -c PREFIX/nginx.conf``.
With ``--lb haproxy`` it writes PREFIX/haproxy.cfg; then ``haproxy -db -f PREFIX/haproxy.cfg``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
TEMPLATES = {"nginx": HERE / "nginx.conf.template", "haproxy": HERE / "haproxy.cfg.template"}
CONFIG_NAMES = {"nginx": "nginx.conf", "haproxy": "haproxy.cfg"}


def render(
    replicas: list[str],
    prefix: Path,
    listen: str = "8080",
    *,
    workers: int = 1,
    fail_timeout_s: int = 2,
    read_timeout_s: int = 600,
    max_body: str = "16m",
    lb: str = "nginx",
    check_interval_ms: int = 500,
) -> str:
    """The config text; ``replicas`` are ``host:port`` of each ``hearth serve``."""
    if not replicas:
        raise ValueError("at least one replica")
    if lb == "nginx":
        servers = "\n".join(
            f"        server {r} max_fails=1 fail_timeout={fail_timeout_s}s;" for r in replicas
        )
    else:
        servers = "\n".join(f"    server replica{i} {r} check" for i, r in enumerate(replicas, 1))
    values = dict(
        prefix=str(prefix.resolve()),
        listen=listen,
        workers=str(workers),
        servers=servers,
        # Every replica once: a request fails only when all of them did.
        tries=str(len(replicas)),
        read_timeout=f"{read_timeout_s}s",
        max_body=max_body,
        check_interval=f"{check_interval_ms}ms",
    )
    # Only ``${name}`` is ours; nginx's own ``$variables`` are left alone.
    template = TEMPLATES[lb]
    text = template.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    left = re.findall(r"\$\{(\w+)\}", text)
    if left:
        raise ValueError(f"unfilled placeholders in {template.name}: {sorted(set(left))}")
    return text


def write(replicas: list[str], prefix: Path, listen: str = "8080", lb: str = "nginx", **options: int) -> Path:
    """Render into ``prefix/nginx.conf`` (or ``haproxy.cfg``), with the temp folders nginx expects."""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    path = prefix / CONFIG_NAMES[lb]
    path.write_text(render(replicas, prefix, listen, lb=lb, **options))  # type: ignore[arg-type]
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("replicas", nargs="+", help="host:port of each hearth serve")
    parser.add_argument("--prefix", type=Path, required=True, help="nginx's folder (config, logs, temp)")
    parser.add_argument("--listen", default="8080", help="nginx's listen directive (default 8080)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--fail-timeout", type=int, default=2, help="nginx: seconds a failed replica is left out"
    )
    parser.add_argument("--lb", choices=sorted(TEMPLATES), default="nginx", help="which load balancer")
    parser.add_argument("--check-interval-ms", type=int, default=500, help="haproxy: /ready probe interval")
    args = parser.parse_args(argv)
    path = write(
        args.replicas,
        args.prefix,
        args.listen,
        args.lb,
        workers=args.workers,
        fail_timeout_s=args.fail_timeout,
        check_interval_ms=args.check_interval_ms,
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
