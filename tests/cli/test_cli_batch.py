"""The real ``hearth batch`` program against a live fake-engine server: submit and follow a
batch, list it, print its results, cancel another; a malformed file fails with its lines named."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.fake_server import FakeHearth, run_hearth


def test_submit_list_results_and_cancel(hearth: FakeHearth, api_key: str, tmp_path: Path) -> None:
    env = {"HEARTH_BASE_URL": hearth.url, "HEARTH_API_KEY": api_key}
    lines = [
        {"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "fake-chat", "max_tokens": 5, "messages": [{"role": "user", "content": f"hi {i}"}]}}
        for i in range(3)
    ]  # fmt: skip
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(line) + "\n" for line in lines))
    submitted = run_hearth("batch", "submit", str(good), env=env)
    assert submitted.returncode == 0, submitted.stderr
    batch_id = submitted.stdout.strip()
    assert batch_id.startswith("batch_") and "completed: 3 of 3 succeeded, 0 failed" in submitted.stderr
    listed = run_hearth("batch", "list", env=env)
    assert listed.returncode == 0 and batch_id[:12] in listed.stdout
    results = run_hearth("batch", "results", batch_id, env=env)
    assert sorted(json.loads(row)["custom_id"] for row in results.stdout.splitlines()) == ["c0", "c1", "c2"]
    status = json.loads(run_hearth("batch", "status", batch_id, env=env).stdout)
    assert status["request_counts"] == {"total": 3, "completed": 3, "failed": 0}

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(lines[0]) + "\n{oops\n")
    failed = run_hearth("batch", "submit", str(bad), env=env)
    assert failed.returncode == 1 and "line 2: line 2 is not valid JSON" in failed.stderr

    slow = tmp_path / "slow.jsonl"
    slow.write_text("".join(json.dumps({**line, "custom_id": f"s{i}", "body": {**line["body"], "max_tokens": 200}}) + "\n"
                            for i, line in enumerate(lines * 10)))  # fmt: skip
    started = run_hearth("batch", "submit", str(slow), "--no-wait", env=env)
    slow_id = started.stdout.strip()
    cancelled = run_hearth("batch", "cancel", slow_id, env=env)
    assert cancelled.returncode == 0 and ("cancelling" in cancelled.stderr or "completed" in cancelled.stderr)
    missing = run_hearth("batch", "status", "batch_nope", env=env)
    assert missing.returncode == 1 and "No such Batch object" in " ".join(missing.stderr.split())
