"""The real ``hearth analyze`` program on skimage's chelsea.png, against a live fake-engine server."""

from __future__ import annotations

import re

from tests.helpers.fake_server import FakeHearth, run_hearth, serve_directory
from tests.helpers.images import chelsea

ROW = re.compile(r"│\s*(\d)\s*│\s*([a-z ]+?)\s*│\s*(█*)[▏▎▍▌▋▊▉]?\s*│\s*([\d.]+)%\s*│")


def test_analyze_prints_a_ranked_table(hearth: FakeHearth, api_key: str) -> None:
    env = {"HEARTH_BASE_URL": hearth.url, "HEARTH_API_KEY": api_key}
    result = run_hearth("analyze", str(chelsea()), "--top-k", "3", env=env)
    assert result.returncode == 0, result.stderr
    assert "chelsea.png · fake-vision" in result.stdout
    rows = ROW.findall(result.stdout)
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert {r[1] for r in rows} <= {"tabby cat", "coffee mug", "rocket", "astronaut"}
    percents = [float(r[3]) for r in rows]
    assert percents == sorted(percents, reverse=True) and percents[0] == 70.0
    assert len(rows[0][2]) == 21 and len(rows[1][2]) == 6  # bars of 30 cells: 70% and 20%

    with serve_directory(chelsea().parent) as root:
        by_url = run_hearth("analyze", f"{root}/chelsea.png", "-k", "1", "--model", "fake-vision", env=env)
    assert by_url.returncode == 0, by_url.stderr
    assert [r[1] for r in ROW.findall(by_url.stdout)] == [rows[0][1]]


def test_analyze_prompt_shows_the_servers_refusal(hearth: FakeHearth, api_key: str) -> None:
    env = {"HEARTH_BASE_URL": hearth.url, "HEARTH_API_KEY": api_key}
    result = run_hearth("analyze", str(chelsea()), "--prompt", "What animal is this?", env=env)
    text = " ".join(result.stderr.split())
    assert result.returncode == 1 and result.stdout == ""  # no answer is made up
    assert "The model fake-chat cannot look at images" in text
    assert "this model does not accept images" in text  # the server's own words
    assert "Traceback" not in result.stderr


def test_analyze_errors_are_friendly(hearth: FakeHearth, api_key: str) -> None:
    env = {"HEARTH_BASE_URL": hearth.url, "HEARTH_API_KEY": api_key}
    missing = run_hearth("analyze", "/no/such/image.png", env=env)
    assert missing.returncode == 1 and "could not read the image /no/such/image.png" in missing.stderr
    not_image = run_hearth("analyze", __file__, env=env)
    assert not_image.returncode == 1
    assert "The server refused the request" in " ".join(not_image.stderr.split())
    for result in (missing, not_image):
        assert "Traceback" not in result.stderr
