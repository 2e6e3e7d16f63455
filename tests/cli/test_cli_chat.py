"""The real ``hearth chat`` program: interactive in tmux, one-shot and piped as subprocesses."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.fake_server import FakeHearth, hearth_command, need_program, run_hearth
from tests.helpers.live import free_port

USAGE = re.compile(r"(\S+) · (\d+) prompt \+ (\d+) completion = (\d+) tokens")


class Tmux:
    """One program in a detached tmux session on a private socket: type into it, read its screen."""

    def __init__(self, command: str) -> None:
        self.tmux = need_program("tmux")
        self.socket = f"hearth-test-{uuid.uuid4().hex[:8]}"
        # The shell line stays open after the program exits, so its last screen and status can be read.
        self._run(
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "160",
            "-y",
            "50",
            f'{command}; echo "[exited $?]"; sleep 600',
        )

    def _run(self, *args: str) -> str:
        done = subprocess.run(
            [self.tmux, "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def send(self, *lines: str) -> None:
        for line in lines:
            self._run("send-keys", "-t", "t", "-l", line)
            self._run("send-keys", "-t", "t", "Enter")

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-t", "t", "-S", "-1000")

    def wait_for(self, check: Callable[[str], bool] | str, timeout: float = 15) -> str:
        test = (lambda s: check in s) if isinstance(check, str) else check
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if test(screen):
                return screen
            time.sleep(0.03)
        raise AssertionError(f"timed out waiting for {check!r}; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([self.tmux, "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def tmux_chat(hearth: FakeHearth, api_key: str) -> Iterator[Callable[..., Tmux]]:
    sessions: list[Tmux] = []

    def start(*args: str) -> Tmux:
        # The pane's own size, not a COLUMNS inherited from whoever runs the tests.
        env = f"env -u COLUMNS -u LINES HEARTH_BASE_URL={hearth.url} HEARTH_API_KEY={api_key}"
        command = " ".join(shlex.quote(part) for part in [*hearth_command(), "chat", *args])
        session = Tmux(f"{env} {command}")
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.close()


def usages(screen: str) -> list[tuple[str, int, int, int]]:
    return [(m[1], int(m[2]), int(m[3]), int(m[4])) for m in USAGE.finditer(screen)]


def test_interactive_session_in_tmux(tmux_chat: Callable[..., Tmux], tmp_path: Path) -> None:
    chat = tmux_chat("--model", "fake-chat", "--max-tokens", "20")
    chat.wait_for("Hearth chat · fake-chat")
    chat.send("hello there")
    screen = chat.wait_for(lambda s: len(usages(s)) == 1)
    assert usages(screen)[0][0] == "fake-chat" and usages(screen)[0][2] == 20
    assert "fake-chat> " in screen

    chat.send("/system You are terse.")
    chat.wait_for("system prompt set")
    chat.send("/model slow-chat")
    chat.wait_for("model: slow-chat")

    # slow-chat sends a token every 50 ms: the answer must show up piece by piece, before its usage line.
    chat.send("tell me more")
    partial = chat.wait_for(lambda s: bool(re.search(r"slow-chat> \S+", s)), timeout=10)
    assert len(usages(partial)) == 1, "the usage line came before the answer was streamed"
    screen = chat.wait_for(lambda s: len(usages(s)) == 2)
    first, second = usages(screen)
    assert second[0] == "slow-chat" and second[2] == 20
    assert second[1] > first[1] + 20  # the whole history (system, turn one and its answer) was sent

    chat.send("line one \\", "line two")
    chat.wait_for(lambda s: len(usages(s)) == 3)
    chat.send('"""', "block a", "block b", '"""')
    chat.wait_for(lambda s: len(usages(s)) == 4)

    saved = tmp_path / "conversation.json"
    chat.send(f"/save {saved}")
    chat.wait_for(f"saved 9 messages to {saved}")
    document = json.loads(saved.read_text())
    assert document["model"] == "slow-chat" and document["system"] == "You are terse."
    roles = [m["role"] for m in document["messages"]]
    assert roles == ["system"] + ["user", "assistant"] * 4
    contents = [m["content"] for m in document["messages"]]
    assert contents[0] == "You are terse." and contents[1] == "hello there"
    assert contents[5] == "line one \nline two" and contents[7] == "block a\nblock b"
    assert all(len(m.split()) == 20 for m in contents[2::2])

    chat.send("/clear")
    chat.wait_for("conversation cleared")
    chat.send("again")
    screen = chat.wait_for(lambda s: len(usages(s)) == 5)
    assert usages(screen)[4][1] < usages(screen)[3][1]  # only the system prompt and one turn now

    chat.send("/model fake-embed", "/nonsense", "/quit")
    screen = chat.wait_for("[exited 0]")
    assert "fake-embed is not a chat model" in screen and "unknown command /nonsense" in screen
    assert "Traceback" not in screen


def test_one_shot_and_piped(hearth: FakeHearth, api_key: str) -> None:
    env = {"HEARTH_BASE_URL": hearth.url, "HEARTH_API_KEY": api_key}
    once = run_hearth("chat", "-m", "fake-chat", "--max-tokens", "5", "hello", env=env)
    assert once.returncode == 0, once.stderr
    assert len(once.stdout.split()) == 5 and once.stdout.endswith("\n")
    # Piped stdin; no --model: the first chat model from /v1/models; the base URL may end in /v1.
    piped = run_hearth(
        "chat", "--max-tokens", "3", "--system", "be brief", "--temperature", "0",
        env={**env, "HEARTH_BASE_URL": hearth.url + "/v1"}, stdin="hi from a pipe\n",
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert len(piped.stdout.split()) == 3 and piped.stderr == ""
    empty = run_hearth("chat", env=env, stdin="")
    assert empty.returncode == 2 and "stdin was empty" in empty.stderr


def test_friendly_errors_never_tracebacks(hearth: FakeHearth) -> None:
    missing = run_hearth("chat", "-m", "fake-chat", "hi", env={"HEARTH_BASE_URL": hearth.url})
    assert missing.returncode == 1
    text = " ".join(missing.stderr.split())
    assert "needs an API key, and none was sent" in text and "HEARTH_API_KEY is not set" in text
    assert "export HEARTH_API_KEY=" in text and "hearth keys create" in text

    wrong = run_hearth(
        "chat",
        "-m",
        "fake-chat",
        "--api-key",
        "hk-wrong0123456789abcdefghij",
        "hi",
        env={"HEARTH_BASE_URL": hearth.url},
    )
    text = " ".join(wrong.stderr.split())
    assert wrong.returncode == 1 and "rejected the API key hk-wrong01…" in text and "HEARTH_API_KEY" in text
    assert "hk-wrong0123456789abcdefghij" not in text  # never the whole secret

    port = free_port()
    refused = run_hearth("chat", "-m", "fake-chat", "hi", env={"HEARTH_BASE_URL": f"http://127.0.0.1:{port}"})
    text = " ".join(refused.stderr.split())
    assert refused.returncode == 1 and f"no server is running at http://127.0.0.1:{port}" in text
    assert "hearth serve" in text

    for result in (missing, wrong, refused):
        assert "Traceback" not in result.stdout + result.stderr


def test_server_failures_are_explained(hearth: FakeHearth, api_key: str) -> None:
    env = {"HEARTH_BASE_URL": hearth.url, "HEARTH_API_KEY": api_key}
    failed = run_hearth("chat", "-m", "fake-chat", "please FAIL_MIDSTREAM", env=env)
    assert failed.returncode == 1 and len(failed.stdout.split()) == 2  # the part that did arrive
    assert "The server failed" in failed.stderr and "engine_error" in failed.stderr
    unknown = run_hearth("chat", "-m", "no-such-model", "hi", env=env)
    assert unknown.returncode == 1 and "the model 'no-such-model' does not exist" in unknown.stderr
    assert "Traceback" not in failed.stderr + unknown.stderr


def test_rate_limited_chat_waits_for_retry_after(hearth: FakeHearth) -> None:
    """A key allowed one request at a time: while a stream holds it, chat gets a 429, says so, waits, retries."""
    key = hearth.create_key("one-at-a-time", max_concurrent=1)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:  # a 20-second stream, dropped as soon as the test has seen chat wait
        body = {"model": "slow-chat", "messages": [{"role": "user", "content": "hold"}], "max_tokens": 400}
        headers = {"Authorization": f"Bearer {key}"}
        url = hearth.url + "/v1/chat/completions"
        with httpx.stream(
            "POST", url, json={**body, "stream": True}, headers=headers, timeout=30
        ) as response:
            assert response.status_code == 200
            holding.set()
            for _ in response.iter_lines():
                if release.is_set():
                    break

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env.update({"COLUMNS": "200", "HEARTH_BASE_URL": hearth.url, "HEARTH_API_KEY": key})
    chat = subprocess.Popen(
        [*hearth_command(), "chat", "-m", "fake-chat", "--max-tokens", "4", "hi"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr: list[str] = []

    def read_stderr() -> None:
        assert chat.stderr is not None
        for line in chat.stderr:
            stderr.append(line)
            if "Retry-After" in line:
                release.set()  # the slot frees while chat waits: its retry gets through

    reader = threading.Thread(target=read_stderr)
    reader.start()
    try:
        assert chat.stdout is not None
        answer = chat.stdout.read()
        assert chat.wait(30) == 0, "".join(stderr)
    finally:
        release.set()
        chat.kill()
        reader.join(10)
        holder.join(30)
    text = " ".join("".join(stderr).split())
    assert "rate limited (too many concurrent requests" in text
    assert "waiting 1s as the server's Retry-After asks, then retrying (1/2)" in text
    assert len(answer.split()) == 4
