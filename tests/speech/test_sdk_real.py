"""The official clients against a live ``hearth serve`` on the default models, where Whisper base
loads on first use: openai's ``audio.transcriptions`` in every format (streaming included) and
``audio.translations``, and tritonclient over OIP v2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import tritonclient.http as triton
from bench.speech_samples import SENTENCES

from tests.helpers.live import LiveServer
from tests.helpers.speech import normalised, word_error_rate

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def sdk(real_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=real_server.url + "/v1", api_key="not-needed-with-no-auth", max_retries=0)


def test_listed_as_loaded_on_first_use(real_server: LiveServer) -> None:
    listed = httpx.get(real_server.url + "/v1/models?details=true", timeout=30).json()["data"]
    whisper = next(m for m in listed if m["id"] == "whisper-base")
    assert "audio.transcriptions" in whisper["capabilities"] and "whisper-1" in whisper["aliases"]
    assert "loads on first use" in real_server.logs() or "first-use" in str(whisper)


def test_every_format_through_the_sdk(sdk: openai.OpenAI, sentences: list[Path]) -> None:
    with sentences[0].open("rb") as f:
        plain = sdk.audio.transcriptions.create(model="whisper-1", file=f)
    assert normalised(plain.text).endswith("over the lazy dog")
    with sentences[1].open("rb") as f:
        text = sdk.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
    assert isinstance(text, str) and "finance" in text.lower()
    for form in ("srt", "vtt"):
        with sentences[1].open("rb") as f:
            cues = sdk.audio.transcriptions.create(model="whisper-1", file=f, response_format=form)
        assert " --> " in cues and "finance" in cues.lower()
    with sentences[2].open("rb") as f:
        verbose = sdk.audio.transcriptions.create(
            model="whisper-1",
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
            language="en",
        )
    assert verbose.language == "english" and verbose.duration > 2
    assert verbose.segments and verbose.segments[0].end > verbose.segments[0].start
    assert verbose.words and all(w.start <= w.end for w in verbose.words)
    # Two words of twelve: one machine's int8 kernels hear "The weather" as "But wherever".
    heard = " ".join(w.word for w in verbose.words)
    assert word_error_rate([SENTENCES[2]], [heard]) <= 2 / 12 + 1e-9, heard


def test_streaming_through_the_sdk(sdk: openai.OpenAI, sentences: list[Path]) -> None:
    with sentences[5].open("rb") as f:
        events = list(sdk.audio.transcriptions.create(model="whisper-1", file=f, stream=True))
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    done = events[-1]
    assert deltas and done.type == "transcript.text.done"
    assert "".join(d.delta for d in deltas).strip() == done.text and "corner" in done.text.lower()
    assert done.usage is not None and done.usage.output_tokens > 0


def test_translation_through_the_sdk(sdk: openai.OpenAI, sentences: list[Path]) -> None:
    with sentences[7].open("rb") as f:
        translated = sdk.audio.translations.create(model="whisper-1", file=f)
    assert "window" in translated.text.lower()


def test_the_word_error_rate_through_the_sdk(sdk: openai.OpenAI, sentences: list[Path]) -> None:
    heard = []
    for path in sentences:
        with path.open("rb") as f:
            heard.append(sdk.audio.transcriptions.create(model="whisper-1", file=f, language="en").text)
    assert word_error_rate(list(SENTENCES), heard) < 0.2


def test_oip_v2_through_tritonclient(real_server: LiveServer, sentences: list[Path]) -> None:
    client = triton.InferenceServerClient(real_server.url.removeprefix("http://"), network_timeout=120)
    meta = client.get_model_metadata("whisper-base")
    assert meta["inputs"] == [{"name": "audio", "datatype": "BYTES", "shape": [1]}]
    audio = triton.InferInput("audio", [1], "BYTES")
    audio.set_data_from_numpy(np.array([sentences[6].read_bytes()], dtype=object))
    result = client.infer("whisper-base", [audio], parameters={"language": "en"})
    text = result.as_numpy("text")
    assert text is not None and "platform" in text[0].decode().lower()
    broken = triton.InferInput("audio", [1], "BYTES")
    broken.set_data_from_numpy(np.array([b"not audio at all"], dtype=object))
    with pytest.raises(triton.InferenceServerException, match="could not be decoded as audio"):
        client.infer("whisper-base", [broken])


def test_hearth_transcribe_from_the_terminal(
    real_server: LiveServer, sentences: list[Path], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env["HEARTH_BASE_URL"] = real_server.url
    hearth = [sys.executable, "-m", "hearth.cli", "transcribe"]
    done = subprocess.run([*hearth, str(sentences[4])], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "market" in done.stdout.lower() and done.stdout.endswith("\n")
    english = subprocess.run(
        [*hearth, "--translate", str(sentences[3])], env=env, capture_output=True, text=True, timeout=120
    )
    assert english.returncode == 0 and "blue" in english.stdout.lower()
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    refused = subprocess.run([*hearth, str(notes)], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "could not be decoded as audio" in refused.stderr.replace("\n", " ")
    assert "Traceback" not in refused.stderr
