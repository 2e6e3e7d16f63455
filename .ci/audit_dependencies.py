"""pip-audit over the installed environment, read honestly.

pip-audit asks PyPI's per-release JSON API for each installed package's known vulnerabilities;
a package it cannot look up is skipped, and pip-audit still says "No known vulnerabilities
found". So this fails on any vulnerability not accepted below, and reports how many packages
were audited at all: where the API cannot be reached (this project's build machines reach only
the package index), every package is skipped, which is said plainly, and fails the run only with
HEARTH_REQUIRE_AUDIT=1.

Accepted findings go in ACCEPTED with the reason, one per vulnerability id.
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404
import sys

ACCEPTED: dict[str, str] = {}  # vulnerability id -> why it does not affect Hearth


def main() -> int:
    ignores = [arg for vuln in ACCEPTED for arg in ("--ignore-vuln", vuln)]
    command = [sys.executable, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off", "-f", "json"]
    run = subprocess.run([*command, *ignores], capture_output=True, text=True)  # nosec B603
    try:
        report = json.loads(run.stdout)
    except ValueError:
        print(run.stderr, file=sys.stderr)
        return 1
    audited = [d for d in report["dependencies"] if "skip_reason" not in d]
    skipped = [d for d in report["dependencies"] if "skip_reason" in d]
    found = [(d["name"], d["version"], v["id"]) for d in audited for v in d.get("vulns", [])]
    for name, version, vuln in found:
        print(f"pip-audit: {name} {version}: {vuln}")
    print(f"pip-audit: {len(audited)} packages audited, {len(skipped)} could not be looked up, "
          f"{len(found)} known vulnerabilities, {len(ACCEPTED)} accepted")  # fmt: skip
    if found:
        return 1
    if not audited and skipped:
        print("pip-audit: PyPI's vulnerability data could not be reached from this machine; NOT audited")
        return 1 if os.environ.get("HEARTH_REQUIRE_AUDIT") == "1" else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
