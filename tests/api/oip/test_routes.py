"""OIP v2 (``/v2``) on fake engines: health, metadata, the JSON tensor format, the binary tensor
extension (bodies built and read by tritonclient's own codec), compression and every 400."""

from __future__ import annotations

import base64
import gzip
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from httpx import Response

from hearth.engines.fake import FakeEmbeddingEngine
from tests.helpers.images import chelsea

EMBED = "/v2/models/fake-embed/infer"
VISION = "/v2/models/fake-vision/infer"


def tensor(name: str, shape: list[int], datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def texts(*items: str) -> dict[str, Any]:
    return {"inputs": [tensor("text", [len(items)], "BYTES", list(items))]}


def image_b64() -> str:
    return base64.b64encode(chelsea().read_bytes()).decode()


def vectors_of(client: TestClient, *items: str) -> list[list[float]]:
    reply = client.post("/v1/embeddings", json={"model": "fake-embed", "input": list(items)})
    return [d["embedding"] for d in reply.json()["data"]]


def error_of(reply: Response, status: int) -> str:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    return str(body["error"])


def parse(reply: Response) -> triton.InferResult:
    """A response read the way tritonclient reads it (binary outputs after the JSON header)."""
    assert reply.status_code == 200, reply.text
    length = reply.headers.get("Inference-Header-Content-Length")
    return triton.InferenceServerClient.parse_response_body(
        reply.content, header_length=None if length is None else int(length)
    )


def test_server_metadata_and_health(client: TestClient) -> None:
    meta = client.get("/v2").json()
    assert meta["name"] == "hearth" and meta["version"]
    assert {"binary_tensor_data", "classification"} <= set(meta["extensions"])
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}


def test_model_metadata_and_readiness(client: TestClient) -> None:
    embed = client.get("/v2/models/fake-embed").json()
    assert embed == {
        "name": "fake-embed",
        "versions": ["1"],
        "platform": "fake",
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, FakeEmbeddingEngine.dimensions]}],
    }
    vision = client.get("/v2/models/fake-vision/versions/1").json()
    assert [(t["name"], t["datatype"]) for t in vision["inputs"]] == [("image", "BYTES")]
    assert [(t["name"], t["datatype"], t["shape"]) for t in vision["outputs"]] == [
        ("labels", "BYTES", [1, -1]),
        ("scores", "FP32", [1, -1]),
    ]
    chat = client.get("/v2/models/fc").json()  # an alias answers under the name asked
    assert chat["name"] == "fc" and chat["inputs"][0]["name"] == "text_input"
    assert client.get("/v2/models/fake-embed/ready").json() == {"name": "fake-embed", "ready": True}
    assert client.get("/v2/models/fake-embed/versions/1/ready").status_code == 200
    index = client.post("/v2/repository/index").json()
    assert [m["name"] for m in index] == ["fake-chat", "fake-embed", "fake-vision"]
    assert {m["state"] for m in index} == {"READY"}


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/nope",
        "/v2/models/nope/ready",
        "/v2/models/fake-embed/versions/2",
        "/v2/models/fake-embed/versions/2/ready",
        "/v2/nothing-here",
    ],
)
def test_unknown_models_versions_and_routes_are_404(client: TestClient, path: str) -> None:
    error_of(client.get(path), 404)
    error_of(client.post(path.removesuffix("/ready") + "/infer", json=texts("a")), 404)


def test_embeddings_in_json(client: TestClient) -> None:
    reply = client.post(EMBED, json={"id": "req-42", **texts("a cat", "a dog")})
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("fake-embed", "1", "req-42")
    (output,) = body["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("embedding", "FP32", [2, 8])
    expected = np.array(vectors_of(client, "a cat", "a dog"), dtype=np.float32)
    np.testing.assert_allclose(np.array(output["data"]).reshape(2, 8), expected, rtol=1e-6)
    # [N, 1] and nested row-major data are the same request.
    column = client.post(EMBED, json={"inputs": [tensor("text", [2, 1], "BYTES", [["a cat"], ["a dog"]])]})
    assert column.json()["outputs"][0]["data"] == output["data"]
    assert "id" not in column.json()


def test_embeddings_in_binary_both_ways(client: TestClient) -> None:
    text = triton.InferInput("text", [3], "BYTES")
    text.set_data_from_numpy(np.array(["one", "two", "thrëe"], dtype=object))  # binary_data=True
    body, json_size = triton.InferenceServerClient.generate_request_body([text], request_id="b1")
    assert json_size is not None  # the binary tensor extension is in use
    reply = client.post(EMBED, content=body, headers={"Inference-Header-Content-Length": str(json_size)})
    assert reply.headers["content-type"] == "application/octet-stream"  # binary_data_output: all binary
    result = parse(reply)
    vectors = result.as_numpy("embedding")
    assert vectors is not None and vectors.dtype == np.float32 and vectors.shape == (3, 8)
    np.testing.assert_allclose(vectors, np.array(vectors_of(client, "one", "two", "thrëe")), rtol=1e-6)
    assert result.get_response()["id"] == "b1"
    assert result.get_output("embedding")["parameters"]["binary_data_size"] == 3 * 8 * 4


def test_output_selection_with_binary_per_output(client: TestClient) -> None:
    body = {
        "inputs": [tensor("image", [1], "BYTES", [image_b64()])],
        "parameters": {"top_k": 3},
        "outputs": [{"name": "scores", "parameters": {"binary_data": True}}, {"name": "labels"}],
    }
    reply = client.post(VISION, json=body)
    result = parse(reply)
    outputs = result.get_response()["outputs"]
    assert [o["name"] for o in outputs] == ["scores", "labels"]
    assert "data" not in outputs[0] and len(outputs[1]["data"]) == 3  # labels stayed JSON
    scores = result.as_numpy("scores")
    assert scores is not None and scores.shape == (1, 3) and scores[0][0] == pytest.approx(0.7)
    only_labels = client.post(VISION, json={**body, "outputs": [{"name": "labels"}]}).json()
    assert [o["name"] for o in only_labels["outputs"]] == ["labels"]


def test_image_as_base64_data_url_and_uint8(client: TestClient) -> None:
    png = chelsea().read_bytes()
    base = client.post(VISION, json={"inputs": [tensor("image", [1], "BYTES", [image_b64()])]}).json()
    labels = base["outputs"][0]["data"]
    # top_k defaults to 5, and the fake classifier knows four labels
    assert len(labels) == 4 and base["outputs"][0]["shape"] == [1, 4]
    data_url = "data:image/png;base64," + image_b64()
    as_url = client.post(VISION, json={"inputs": [tensor("image", [1, 1], "BYTES", [data_url])]}).json()
    as_uint8 = client.post(VISION, json={"inputs": [tensor("image", [len(png)], "UINT8", list(png))]}).json()
    assert as_url["outputs"][0]["data"] == labels == as_uint8["outputs"][0]["data"]
    raw = triton.InferInput("image", [1, len(png)], "UINT8")
    raw.set_data_from_numpy(np.frombuffer(png, dtype=np.uint8).reshape(1, -1))
    request, size = triton.InferenceServerClient.generate_request_body([raw])
    result = parse(
        client.post(VISION, content=request, headers={"Inference-Header-Content-Length": str(size)})
    )
    assert [label.decode() for label in result.as_numpy("labels")[0]] == labels


def test_classification_extension(client: TestClient) -> None:
    body = {
        "inputs": [tensor("image", [1], "BYTES", [image_b64()])],
        "outputs": [{"name": "scores", "parameters": {"classification": 2}}],
    }
    (output,) = client.post(VISION, json=body).json()["outputs"]
    assert output["datatype"] == "BYTES" and output["shape"] == [1, 2]
    score, index, label = output["data"][0].split(":", 2)
    assert float(score) == pytest.approx(0.7) and int(index) >= 0 and label


def test_chat_model_as_text_input_and_output(client: TestClient) -> None:
    body = {
        "inputs": [tensor("text_input", [1], "BYTES", ["Once upon a time"])],
        "parameters": {"max_tokens": 4, "temperature": 0},
    }
    (output,) = client.post("/v2/models/fake-chat/infer", json=body).json()["outputs"]
    assert output["name"] == "text_output" and output["shape"] == [1]
    assert len(output["data"][0].split()) == 4


def test_compressed_request_bodies(client: TestClient) -> None:
    raw = json.dumps(texts("a cat")).encode()
    plain = client.post(EMBED, content=raw).json()["outputs"]
    for encoding, packed in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw))):
        reply = client.post(EMBED, content=packed, headers={"Content-Encoding": encoding})
        assert reply.json()["outputs"] == plain
    error_of(client.post(EMBED, content=b"not gzip", headers={"Content-Encoding": "gzip"}), 400)
    error_of(client.post(EMBED, content=gzip.compress(raw)[:-12], headers={"Content-Encoding": "gzip"}), 400)
    error_of(client.post(EMBED, content=raw, headers={"Content-Encoding": "br"}), 400)


def test_a_compressed_body_is_held_to_the_body_limit(tmp_path: Path) -> None:
    from hearth.app import build_app
    from tests.helpers.apps import fake_settings, wait_ready

    with TestClient(build_app(fake_settings(tmp_path, max_body_bytes=64 * 1024))) as small:
        wait_ready(small)
        bomb = gzip.compress(json.dumps(texts("a " * 100_000)).encode())
        assert len(bomb) < 64 * 1024
        assert "decompressed" in error_of(
            small.post(EMBED, content=bomb, headers={"Content-Encoding": "gzip"}), 413
        )


def binary_body(inputs: list[dict[str, Any]], blob: bytes) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": inputs}).encode()
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}


def packed(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in items)


def binary_text(size: int, shape: list[int] | None = None) -> dict[str, Any]:
    return {
        "name": "text",
        "shape": shape or [1],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": size},
    }


BAD_JSON: list[tuple[str, Any, str]] = [
    ("not an object", [], "JSON object"),
    ("no inputs", {"inputs": []}, "inputs"),
    ("bad datatype name", {"inputs": [tensor("text", [1], "STRING", ["a"])]}, "datatype"),
    ("negative dim", {"inputs": [tensor("text", [-1], "BYTES", ["a"])]}, "shape"),
    ("wrong datatype", {"inputs": [tensor("text", [1], "FP32", [1.0])]}, "must be BYTES"),
    ("wrong shape", {"inputs": [tensor("text", [1, 2], "BYTES", ["a", "b"])]}, "shape"),
    ("count mismatch", {"inputs": [tensor("text", [3], "BYTES", ["a"])]}, "3 elements"),
    ("empty batch", {"inputs": [tensor("text", [0], "BYTES", [])]}, "at least one"),
    ("numbers as BYTES", {"inputs": [tensor("text", [1], "BYTES", [7])]}, "strings"),
    ("missing input", {"inputs": [tensor("words", [1], "BYTES", ["a"])]}, "missing input"),
    (
        "extra input",
        {"inputs": [tensor("text", [1], "BYTES", ["a"]), tensor("x", [1], "BYTES", ["b"])]},
        "unexpected",
    ),
    (
        "twice",
        {"inputs": [tensor("text", [1], "BYTES", ["a"]), tensor("text", [1], "BYTES", ["b"])]},
        "twice",
    ),
    ("no data", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES"}]}, "no data"),
    ("unknown output", {**texts("a"), "outputs": [{"name": "nope"}]}, "unknown output"),
    ("output twice", {**texts("a"), "outputs": [{"name": "embedding"}] * 2}, "twice"),
    ("binary flag", {**texts("a"), "parameters": {"binary_data_output": "yes"}}, "true or false"),
    (
        "classification",
        {**texts("a"), "outputs": [{"name": "embedding", "parameters": {"classification": 3}}]},
        "classification",
    ),
    ("truncate flag", {**texts("a"), "parameters": {"truncate": 1}}, "true or false"),
    (
        "shared memory",
        {"inputs": [{**tensor("text", [1], "BYTES", ["a"]), "parameters": {"shared_memory_region": "r"}}]},
        "shared-memory",
    ),
    ("too many texts", texts(*["a"] * 2049), "at most 2048"),
]


@pytest.mark.parametrize(("case", "body", "says"), BAD_JSON, ids=[c[0] for c in BAD_JSON])
def test_bad_embedding_requests_are_400(client: TestClient, case: str, body: Any, says: str) -> None:
    assert says in error_of(client.post(EMBED, json=body), 400)


BAD_IMAGES: list[tuple[str, Any, str]] = [
    ("not base64", [tensor("image", [1], "BYTES", ["%%%"])], "base64"),
    ("not an image", [tensor("image", [1], "BYTES", [base64.b64encode(b"hello").decode()])], "image"),
    ("two images", [tensor("image", [2], "BYTES", [image_b64(), image_b64()])], "exactly one"),
    ("uint8 range", [tensor("image", [2], "UINT8", [1, 256])], "0-255"),
    ("uint8 shape", [tensor("image", [2, 2], "UINT8", [1, 2, 3, 4])], "shape"),
    ("wrong input", [tensor("text", [1], "BYTES", ["a"])], "missing input"),
]


@pytest.mark.parametrize(("case", "inputs", "says"), BAD_IMAGES, ids=[c[0] for c in BAD_IMAGES])
def test_bad_image_requests_are_400(client: TestClient, case: str, inputs: Any, says: str) -> None:
    assert says in error_of(client.post(VISION, json={"inputs": inputs}), 400)


@pytest.mark.parametrize(
    ("parameters", "says"),
    [({"top_k": 0}, "top_k"), ({"top_k": "3"}, "top_k"), ({"top_k": True}, "top_k")],
)
def test_bad_parameters_are_400(client: TestClient, parameters: dict[str, Any], says: str) -> None:
    body = {"inputs": [tensor("image", [1], "BYTES", [image_b64()])], "parameters": parameters}
    assert says in error_of(client.post(VISION, json=body), 400)


@pytest.mark.parametrize(
    ("case", "body", "headers", "says"),
    [
        ("malformed JSON", b'{"inputs": [', {}, "could not parse"),
        ("header past the end", b"{}", {"Inference-Header-Content-Length": "99"}, "no larger than the body"),
        ("header not a number", b"{}", {"Inference-Header-Content-Length": "x"}, "byte count"),
        ("short binary", *binary_body([binary_text(12)], packed(b"abc")), "fewer bytes"),
        ("extra binary", *binary_body([binary_text(7)], packed(b"abc") + b"zz"), "accounts for"),
        ("count mismatch", *binary_body([binary_text(10, [3])], packed(b"a", b"b")), "3 elements"),
        (
            "long element",
            *binary_body([binary_text(13, [2])], packed(b"abc") + struct.pack("<I", 9) + b"zz"),
            "past the end",
        ),
        ("cut length", *binary_body([binary_text(9, [2])], packed(b"abc") + b"zz"), "length"),
        ("bad utf-8", *binary_body([binary_text(6)], packed(b"\xff\xfe")), "UTF-8"),
        (
            "bad size",
            *binary_body([{**binary_text(1), "parameters": {"binary_data_size": -1}}], b""),
            "binary_data_size",
        ),
    ],
)
def test_bad_bodies_are_400(
    client: TestClient, case: str, body: bytes, headers: dict[str, str], says: str
) -> None:
    assert says in error_of(client.post(EMBED, content=body, headers=headers), 400)


def test_chat_parameters_are_checked(client: TestClient) -> None:
    chat = "/v2/models/fake-chat/infer"
    prompt = {"inputs": [tensor("text_input", [1], "BYTES", ["hi"])]}
    assert "max_tokens" in error_of(client.post(chat, json={**prompt, "parameters": {"max_tokens": 0}}), 400)
    assert "temperature" in error_of(
        client.post(chat, json={**prompt, "parameters": {"temperature": 9}}), 400
    )
    assert "stop" in error_of(client.post(chat, json={**prompt, "parameters": {"stop": ["a"]}}), 400)
    assert "above 0" in error_of(client.post(chat, json={**prompt, "parameters": {"top_p": 0}}), 400)
    too_long = {**prompt, "parameters": {"max_tokens": 100_000}}
    assert "context length" in error_of(client.post(chat, json=too_long), 400)


def test_a_model_that_is_not_ready_is_503(client: TestClient) -> None:
    slot = client.app.state.registry.entry("fake-embed")  # type: ignore[attr-defined]
    engine, slot.engine, slot.state = slot.engine, None, "loading"
    try:
        reply = client.get("/v2/health/ready")
        assert reply.status_code == 503 and reply.json()["ready"] is False
        assert "fake-embed" in reply.json()["error"] and reply.headers["retry-after"] == "2"
        ready = client.get("/v2/models/fake-embed/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert "loading" in error_of(client.post(EMBED, json=texts("a")), 503)
        assert client.get("/v2/health/live").status_code == 200
    finally:
        slot.engine, slot.state = engine, "ready"
    assert client.get("/v2/health/ready").status_code == 200


def _mutations(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every place in a JSON body, each with every wrong kind of value put there."""
    wrong: list[Any] = [None, True, -1, 1.5, "x", [], {}, [[1]], {"a": 1}, "%%%"]
    places = [(path, w) for w in wrong] if path else []
    if isinstance(value, dict):
        for key, child in value.items():
            places += _mutations(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value[:2]):
            places += _mutations(child, (*path, index))
    return places


def _replaced(body: Any, path: tuple[Any, ...], new: Any) -> Any:
    body = json.loads(json.dumps(body))
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return body


def test_no_mutation_of_a_valid_request_is_a_500(client: TestClient) -> None:
    requests = [
        (
            EMBED,
            {
                "id": "1",
                "parameters": {"truncate": True},
                **texts("a", "b"),
                "outputs": [{"name": "embedding"}],
            },
        ),
        (VISION, {"parameters": {"top_k": 2}, "inputs": [tensor("image", [1], "BYTES", [image_b64()])]}),
        (
            "/v2/models/fake-chat/infer",
            {"parameters": {"max_tokens": 2}, "inputs": [tensor("text_input", [1], "BYTES", ["hi"])]},
        ),
    ]
    tried = 0
    for path, body in requests:
        assert client.post(path, json=body).status_code == 200
        for place, value in _mutations(body):
            reply = client.post(path, json=_replaced(body, place, value))
            assert reply.status_code in (200, 400), (place, value, reply.text)
            tried += 1
    assert tried > 200
