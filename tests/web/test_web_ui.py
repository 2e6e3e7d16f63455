"""The web UI at ``/`` in real headless Chromium, driven by ``ui_driver.mjs`` (playwright-core).

The browser is Debian's ``/usr/bin/chromium``; playwright-core never downloads one. Screenshots
land in ``test-artifacts/web/``. Without node, npm or chromium the tests skip, or fail when
``HEARTH_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import skimage.data

from tests.helpers.live import LiveServer
from tests.helpers.speech import spoken

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "web"
CHELSEA = Path(skimage.data.__file__).parent / "chelsea.png"
CHROMIUM = os.environ.get("HEARTH_CHROMIUM", "/usr/bin/chromium")
from tests.helpers.services import REQUIRE_SERVICES as REQUIRE  # noqa: E402

ADMIN = "admin-secret-web-ui"
# A slow fake chat model, so a streamed answer takes a couple of seconds and can be stopped.
FAKE_MODELS = (
    '[{"id": "fake-chat", "kind": "chat", "backend": "fake", "source": "-", "options": {"token_delay_s": 0.05}},'
    ' {"id": "fake-vision", "kind": "image-classification", "backend": "fake", "source": "-"}]'
)

# Two chat models, the default one second: the playground must pick it by its alias.
OPERATOR_MODELS = (
    '[{"id": "fake-other", "kind": "chat", "backend": "fake", "source": "-"},'
    ' {"id": "fake-chat", "kind": "chat", "backend": "fake", "source": "-", "aliases": ["default"],'
    '  "options": {"token_delay_s": 0.02}},'
    ' {"id": "fake-embed", "kind": "embedding", "backend": "fake", "source": "-"},'
    ' {"id": "fake-vision", "kind": "image-classification", "backend": "fake", "source": "-"}]'
)


def _missing(message: str) -> None:
    if REQUIRE:
        pytest.fail(message + " (HEARTH_REQUIRE_SERVICES=1: the web UI tests are required)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def node_driver() -> Path:
    """The driver script, once node, npm, chromium and playwright-core are all there."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            _missing(f"{tool} is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} is missing: apt-get install -y chromium")
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=HERE,
            env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            _missing(f"npm ci failed in {HERE}:\n{done.stdout}\n{done.stderr}")
    return HERE / "ui_driver.mjs"


def _run_driver(driver: Path, **env: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    variables = {
        **os.environ,
        "HEARTH_CHROMIUM": CHROMIUM,
        "HEARTH_UI_IMAGE": str(CHELSEA),
        "HEARTH_UI_ARTIFACTS": str(ARTIFACTS),
        **env,
    }
    done = subprocess.run(
        ["node", str(driver)], cwd=HERE, env=variables, capture_output=True, text=True, timeout=150
    )
    output = done.stdout + done.stderr
    print(output)
    assert done.returncode == 0, f"the UI scenario failed (screenshots in {ARTIFACTS}):\n{output}"
    return output


def _create_key(server: LiveServer, name: str, **limits: object) -> str:
    return server.create_key(ADMIN, name, **limits)


def _banner_key_command(server: LiveServer) -> str:
    """The "get a key" line the server printed: the sign-in page must say the same."""
    found = server.wait_for_log(r"^  get a key     (.+)$")
    config = httpx.get(server.url + "/ui/config").json()
    assert config["key_command"] == found.group(1), (config, found.group(1))
    return found.group(1)


def test_ui_serves_page_and_static_files(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from hearth.app import build_app
    from tests.helpers.apps import fake_settings

    with TestClient(build_app(fake_settings(tmp_path))) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
            assert client.get(src).status_code == 200, src
        script = client.get("/static/app.js")
        assert "javascript" in script.headers["content-type"]
        missing = client.get("/static/nope.js")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_ui_with_keys_on_fake_engines(tmp_path: Path, node_driver: Path) -> None:
    env = {"HEARTH_MODELS": FAKE_MODELS, "HEARTH_ADMIN_KEY": ADMIN}
    with LiveServer(tmp_path / "data", env=env) as server:
        key = _create_key(server, "web-ui", rpm=120, tpm=100_000, monthly_tokens=1_000_000)
        limited = _create_key(server, "web-ui-limited", rpm=3)
        output = _run_driver(
            node_driver,
            HEARTH_UI_URL=server.url,
            HEARTH_UI_MODE="fake",
            HEARTH_UI_KEY=key,
            HEARTH_UI_LIMITED_KEY=limited,
            HEARTH_UI_ADMIN_KEY=ADMIN,
            HEARTH_UI_KEY_COMMAND=_banner_key_command(server),
        )
        assert "fake UI scenario passed" in output
        # Stop aborted the stream and the server ended that request at once (499, client gone),
        # long before its 1500 tokens at 0.05 s each.
        metrics = httpx.get(server.url + "/metrics").text
        stopped = re.search(
            r'hearth_requests_total\{family="openai",model="fake-chat",route="POST /v1/chat/completions",status="499",variant="fake-chat"\} (\S+)',
            metrics,
        )
        assert stopped is not None and float(stopped.group(1)) == 1.0, metrics


def test_ui_operator_signs_in_and_manages_keys(tmp_path: Path, node_driver: Path) -> None:
    """The admin key from DATA_DIR/admin.key mints a personal key; keys are made and revoked."""
    env = {"HEARTH_MODELS": OPERATOR_MODELS}
    with LiveServer(tmp_path / "data", env=env) as server:
        admin_file = server.data_dir / "admin.key"
        admin_key = admin_file.read_text().strip()
        output = _run_driver(
            node_driver,
            HEARTH_UI_URL=server.url,
            HEARTH_UI_MODE="operator",
            HEARTH_UI_ADMIN_KEY=admin_key,
            HEARTH_UI_ADMIN_PLACE=str(admin_file),
            HEARTH_UI_KEY_COMMAND=_banner_key_command(server),
        )
        assert "operator UI scenario passed" in output
        keys = httpx.get(server.url + "/admin/keys", headers={"Authorization": f"Bearer {admin_key}"})
        by_name = {k["name"]: k for k in keys.json()["data"]}
        alice = by_name["web-ui-alice"]
        assert alice["status"] == "revoked" and alice["models"] == ["fake-chat"]
        assert alice["rpm"] == 7 and alice["monthly_tokens"] == 5000 and alice["expires_at"] is not None
        assert by_name["operator-web"]["status"] == "active"
        assert by_name["operator-web-2"]["status"] == "revoked"  # the operator revoked their own key
        assert set(by_name) == {"web-ui-alice", "operator-web", "operator-web-2", "operator-web-3"}


def test_ui_without_auth_on_fake_engines(tmp_path: Path, node_driver: Path) -> None:
    env = {"HEARTH_MODELS": OPERATOR_MODELS}
    with LiveServer(tmp_path / "data", "--no-auth", env=env) as server:
        output = _run_driver(node_driver, HEARTH_UI_URL=server.url, HEARTH_UI_MODE="noauth")
        assert "noauth UI scenario passed" in output


@pytest.mark.real
def test_ui_on_real_models_without_auth(real_server: LiveServer, node_driver: Path, tmp_path: Path) -> None:
    speech = spoken("The train to London leaves from platform number four.", tmp_path / "train.wav")
    output = _run_driver(
        node_driver, HEARTH_UI_URL=real_server.url, HEARTH_UI_MODE="real", HEARTH_UI_AUDIO=str(speech)
    )
    assert "real UI scenario passed" in output
