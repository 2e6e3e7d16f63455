"""The OIP v2 curl examples against a live fake-engine server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers.fake_server import FakeHearth, need_program
from tests.helpers.images import chelsea

CURL = Path(__file__).resolve().parents[2] / "examples" / "curl"


def script(hearth: FakeHearth, name: str, *args: str, **env: str) -> Any:
    need_program("curl")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    settings = {"HEARTH_BASE_URL": hearth.url, "HEARTH_API_KEY": hearth.create_key(f"oip-{name}"), **env}
    done = subprocess.run(
        ["bash", str(CURL / name), *args],
        env={**clean, **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def test_oip_embed_and_classify_scripts(hearth: FakeHearth) -> None:
    embedded = script(hearth, "oip_embed.sh", "one", 'two "quoted"', HEARTH_EMBED_MODEL="fake-embed")
    (vectors,) = embedded["outputs"]
    assert (vectors["name"], vectors["datatype"], vectors["shape"]) == ("embedding", "FP32", [2, 8])
    assert len(vectors["data"]) == 16
    classified = script(hearth, "oip_classify.sh", str(chelsea()), "2", HEARTH_CLASSIFY_MODEL="fake-vision")
    labels, scores = classified["outputs"]
    assert (labels["name"], labels["shape"], scores["datatype"]) == ("labels", [1, 2], "FP32")
