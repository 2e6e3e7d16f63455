"""tritonclient against a live ``hearth serve`` on the real default models, over OIP v2."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import skimage.data
import tritonclient.http as triton

from tests.helpers.live import LiveServer

pytestmark = pytest.mark.real

CHELSEA = Path(skimage.data.__file__).parent / "chelsea.png"


@pytest.fixture(scope="module")
def client(real_server: LiveServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(real_server.url.removeprefix("http://"), network_timeout=120)


def test_metadata_of_the_real_models(client: triton.InferenceServerClient) -> None:
    assert client.is_server_ready() and client.is_model_ready("all-minilm-l6-v2")
    meta = client.get_model_metadata("all-minilm-l6-v2")
    assert meta["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]
    assert meta["platform"] == "llama.cpp"


def test_similar_sentences_have_closer_embeddings(client: triton.InferenceServerClient) -> None:
    sentences = [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "I filed my tax return today.",
    ]
    text = triton.InferInput("text", [3, 1], "BYTES")
    text.set_data_from_numpy(np.array(sentences, dtype=object).reshape(3, 1))
    vectors = client.infer("all-minilm-l6-v2", [text]).as_numpy("embedding")
    assert vectors is not None and vectors.shape == (3, 384) and vectors.dtype == np.float32
    cat, kitten, tax = vectors
    assert float(cat @ kitten) > float(cat @ tax) + 0.3
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-4)


def test_the_cat_photo_is_a_cat(client: triton.InferenceServerClient) -> None:
    image = triton.InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(np.array([CHELSEA.read_bytes()], dtype=object))
    result = client.infer("efficientnet-lite0", [image], parameters={"top_k": 3})
    labels, scores = result.as_numpy("labels"), result.as_numpy("scores")
    assert labels is not None and scores is not None and labels.shape == (1, 3)
    assert "cat" in labels[0][0].decode() and scores[0][0] > 0.3


def test_a_completion_through_text_input(
    client: triton.InferenceServerClient, real_server: LiveServer
) -> None:
    prompt = triton.InferInput("text_input", [1], "BYTES")
    prompt.set_data_from_numpy(np.array(["The capital of France is"], dtype=object))
    result = client.infer("gemma-3-270m", [prompt], parameters={"max_tokens": 8, "temperature": 0})
    (text,) = result.as_numpy("text_output")
    assert "France" in text.decode()  # the base model goes on: " the capital of the country of France."
    # The same plain completion as the OpenAI family's, through the same gateway.
    body = {"model": "gemma-3-270m", "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}
    openai = httpx.post(real_server.url + "/v1/completions", json=body, timeout=120).json()
    assert text.decode() == openai["choices"][0]["text"]
