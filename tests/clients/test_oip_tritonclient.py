"""The official ``tritonclient[http]`` against a live ``hearth serve`` on fake engines, with keys:
its default calls (binary tensors both ways), JSON tensors, compression, the aio client, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio
from tritonclient.utils import InferenceServerException

from tests.helpers.fake_server import FakeHearth
from tests.helpers.images import chelsea


class BearerKey(triton.InferenceServerClientPlugin):
    """How a tritonclient user sends a key on every call: a plugin that sets the header."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, request: Any) -> None:
        request.headers["Authorization"] = f"Bearer {self.key}"


@pytest.fixture(scope="module")
def client(hearth: FakeHearth, api_key: str) -> triton.InferenceServerClient:
    client = triton.InferenceServerClient(hearth.url.removeprefix("http://"), network_timeout=60)
    client.register_plugin(BearerKey(api_key))
    return client


def texts(*items: str, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("text", [len(items)], "BYTES")
    tensor.set_data_from_numpy(np.array(items, dtype=object), binary_data=binary)
    return tensor


def image(data: bytes) -> triton.InferInput:
    tensor = triton.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([data], dtype=object))
    return tensor


def test_health_and_metadata(client: triton.InferenceServerClient, hearth: FakeHearth) -> None:
    anonymous = triton.InferenceServerClient(hearth.url.removeprefix("http://"))
    assert anonymous.is_server_live() and anonymous.is_server_ready()
    assert "binary_tensor_data" in anonymous.get_server_metadata()["extensions"]
    assert not anonymous.is_model_ready("fake-embed")  # 401 without a key
    assert client.is_model_ready("fake-embed") and client.is_model_ready("fake-vision", "1")
    assert not client.is_model_ready("nope")
    meta = client.get_model_metadata("fake-embed")
    assert meta["inputs"][0] == {"name": "text", "datatype": "BYTES", "shape": [-1]}
    assert meta["outputs"][0]["shape"] == [-1, 8]
    names = [m["name"] for m in client.get_model_repository_index()]
    assert names == ["fake-chat", "slow-chat", "fake-embed", "fake-vision"]


def test_embeddings_binary_by_default_and_in_json(client: triton.InferenceServerClient) -> None:
    result = client.infer("fake-embed", [texts("a cat", "a dog", "a tax form")], request_id="r-1")
    vectors = result.as_numpy("embedding")
    assert vectors is not None and vectors.shape == (3, 8) and vectors.dtype == np.float32
    assert result.get_output("embedding")["parameters"]["binary_data_size"] == 96
    assert result.get_response()["id"] == "r-1"
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5)
    as_json = client.infer(
        "fake-embed",
        [texts("a cat", "a dog", "a tax form", binary=False)],
        outputs=[triton.InferRequestedOutput("embedding", binary_data=False)],
    )
    assert "data" in as_json.get_output("embedding")
    np.testing.assert_allclose(as_json.as_numpy("embedding"), vectors, rtol=1e-6)
    compressed = client.infer(
        "fake-embed", [texts("a cat", "a dog", "a tax form")], request_compression_algorithm="gzip"
    )
    np.testing.assert_array_equal(compressed.as_numpy("embedding"), vectors)


def test_classification_of_an_image_file(client: triton.InferenceServerClient) -> None:
    png = chelsea().read_bytes()
    result = client.infer("fake-vision", [image(png)], parameters={"top_k": 2})
    labels, scores = result.as_numpy("labels"), result.as_numpy("scores")
    assert labels is not None and scores is not None
    assert labels.shape == scores.shape == (1, 2) and scores.dtype == np.float32
    assert all(isinstance(label, bytes) and label for label in labels[0]) and scores[0][0] >= scores[0][1]
    raw = triton.InferInput("image", [len(png)], "UINT8")
    raw.set_data_from_numpy(np.frombuffer(png, dtype=np.uint8))
    top = client.infer("fake-vision", [raw], outputs=[triton.InferRequestedOutput("scores", class_count=1)])
    score, _, label = top.as_numpy("scores")[0][0].decode().split(":", 2)
    assert label == labels[0][0].decode() and float(score) == pytest.approx(float(scores[0][0]), abs=1e-6)


def test_a_chat_model_through_text_input(client: triton.InferenceServerClient) -> None:
    prompt = triton.InferInput("text_input", [1], "BYTES")
    prompt.set_data_from_numpy(np.array(["Once upon a time"], dtype=object))
    result = client.infer("fake-chat", [prompt], parameters={"max_tokens": 3})
    (text,) = result.as_numpy("text_output")
    assert len(text.decode().split()) == 3


def test_errors_carry_the_status_and_message(
    client: triton.InferenceServerClient, hearth: FakeHearth
) -> None:
    def failure(*args: Any, **kwargs: Any) -> InferenceServerException:
        with pytest.raises(InferenceServerException) as caught:
            client.infer(*args, **kwargs)
        return caught.value

    assert failure("nope", [texts("a")]).status() == "404"
    wrong = triton.InferInput("text", [1], "FP32")
    wrong.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    error = failure("fake-embed", [wrong])
    assert error.status() == "400" and "must be BYTES" in str(error.message())
    assert "missing input" in str(failure("fake-vision", [texts("a")]).message())
    bad_image = failure("fake-vision", [image(b"not a picture")])
    assert bad_image.status() == "400" and "not an image" in str(bad_image.message())
    anonymous = triton.InferenceServerClient(hearth.url.removeprefix("http://"))
    with pytest.raises(InferenceServerException) as caught:
        anonymous.infer("fake-embed", [texts("a")], headers={"Authorization": "Bearer hk-wrong"})
    assert caught.value.status() == "401"


async def test_the_aio_client(hearth: FakeHearth, api_key: str) -> None:
    async with triton_aio.InferenceServerClient(hearth.url.removeprefix("http://")) as client:
        headers = {"Authorization": f"Bearer {api_key}"}
        assert await client.is_server_ready()
        result = await client.infer("fake-embed", [texts("a cat")], headers=headers)
        vectors = result.as_numpy("embedding")
        assert vectors is not None and vectors.shape == (1, 8)
