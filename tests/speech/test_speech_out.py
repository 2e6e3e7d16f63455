"""Text to speech on a real Piper voice through the official openai SDK: the audio in every
format decodes to the same length, and Whisper hears the words that were read; streaming, the
SSE form, the usage row (characters and seconds), limits and errors in OpenAI's shape."""

from __future__ import annotations

import io
import wave
from typing import Any

import av
import openai
import pytest
from fastapi.testclient import TestClient

from tests.helpers.keys import admin_headers
from tests.helpers.ledger import rows
from tests.helpers.speech import normalised, word_error_rate

pytestmark = pytest.mark.real
TEXT = "Good morning. The train to London leaves from platform number four."


def sdk(client: TestClient, name: str, **limits: Any) -> openai.OpenAI:
    made = client.post("/admin/keys", json={"name": name, **limits}, headers=admin_headers())
    assert made.status_code == 201, made.text
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key=made.json()["secret"], http_client=client, max_retries=0
    )


def seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.rate


def test_whisper_hears_what_the_voice_read(speech_app: TestClient) -> None:
    client = sdk(speech_app, "round-trip")
    spoken = client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="wav")
    audio = spoken.read()
    with wave.open(io.BytesIO(audio)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 22050
        assert 3 < w.getnframes() / w.getframerate() < 8
    heard = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", audio), language="en")
    # The voice samples its own noise (VITS), so each reading differs a little ("leaves" was
    # heard as "least" or "leads"): two of the eleven words may be heard wrong, not more, and
    # the names must be right.
    assert word_error_rate([TEXT], [heard.text]) <= 2 / 11, heard.text
    assert {"london", "platform"} <= set(normalised(heard.text).split())
    row = next(r for r in reversed(rows(speech_app)) if r["model"] == "piper-joe")
    assert row["characters"] == len(TEXT) and 3 < row["audio_seconds"] < 8 and row["status_code"] == 200


def test_every_format_decodes_to_the_same_speech(speech_app: TestClient) -> None:
    client = sdk(speech_app, "formats")
    lengths = {}
    for form in ("mp3", "opus", "aac", "flac", "wav"):
        lengths[form] = seconds(
            client.audio.speech.create(model="tts-1", voice="nova", input=TEXT, response_format=form).read()
        )
    pcm = client.audio.speech.create(model="tts-1", voice="nova", input=TEXT, response_format="pcm").read()
    lengths["pcm"] = len(pcm) / 2 / 22050
    # Each reading samples its own phoneme durations (about ±0.1 s here), and encoders pad a frame.
    assert max(lengths.values()) - min(lengths.values()) < 0.6, lengths
    faster = seconds(
        client.audio.speech.create(
            model="tts-1", voice="nova", input=TEXT, speed=2.0, response_format="wav"
        ).read()
    )
    assert faster < lengths["wav"] * 0.7


def test_streamed_as_it_is_read(speech_app: TestClient) -> None:
    client = sdk(speech_app, "stream")
    three = "One sentence here. Another sentence there. And a third one to finish."
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=three, response_format="mp3"
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        pieces = list(response.iter_bytes())
    assert seconds(b"".join(pieces)) > 3
    events = speech_app.post(
        "/v1/audio/speech",
        headers={"Authorization": f"Bearer {client.api_key}"},
        json={"model": "tts-1", "voice": "alloy", "input": three, "stream_format": "sse"},
    )
    frames = [line for line in events.text.splitlines() if line.startswith("event: ")]
    assert frames.count("event: speech.audio.delta") >= 3 and frames[-1] == "event: speech.audio.done"
    assert f'"input_tokens":{len(three)}' in events.text


def test_bad_requests_in_openais_shape(speech_app: TestClient) -> None:
    client = sdk(speech_app, "bad")
    cases = [
        ({"voice": "bob"}, 400, "voice"),
        ({"input": ""}, 400, "input"),
        ({"input": "x" * 4097}, 400, "input"),
        ({"speed": 5}, 400, "speed"),
        ({"response_format": "ogg"}, 400, "response_format"),
        ({"model": "whisper-1"}, 400, None),
        ({"model": "nope"}, 404, None),
    ]
    for change, status, param in cases:
        body = {"model": "tts-1", "voice": "alloy", "input": "Hello.", **change}
        reply = speech_app.post(
            "/v1/audio/speech", headers={"Authorization": f"Bearer {client.api_key}"}, json=body
        )
        assert reply.status_code == status, (change, reply.text)
        error = reply.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"]
        if param:
            assert error["param"] == param, (change, error)
    with pytest.raises(openai.BadRequestError, match="unknown voice"):
        client.audio.speech.create(model="tts-1", voice="bob", input="Hello.")  # type: ignore[arg-type]


def test_a_keys_rate_limit_applies(speech_app: TestClient) -> None:
    client = sdk(speech_app, "limited-tts", rpm=1)
    client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.").read()
    with pytest.raises(openai.RateLimitError):
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hello again.")


def test_no_voice_configured_is_a_clear_404(client: TestClient) -> None:
    reply = client.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "Hi."})
    assert reply.status_code == 404 and "tts-1" in reply.json()["error"]["message"]
    unnamed = client.post("/v1/audio/speech", json={"voice": "alloy", "input": "Hi."})
    assert unnamed.status_code == 404 and "text-to-speech" in unnamed.json()["error"]["message"]
