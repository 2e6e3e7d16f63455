"""A rerank (cross-encoder) model beside the embedding model, on the fake engines: it is what a
rerank request without a model gets, its capability says cross-encoder, the bi-encoder still
serves when the embedding model is named, and the other routes refuse it clearly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers.apps import fake_models, fake_settings, wait_ready

RERANKER = {"id": "fake-rerank", "kind": "rerank", "backend": "fake", "source": "-"}
DOCS = ["the sun is hot", "cats like to sleep all day", "a cat sleeps"]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    models = [*[m.model_dump() for m in fake_models()], RERANKER]
    with TestClient(build_app(fake_settings(tmp_path, models=models))) as test_client:
        wait_ready(test_client)
        yield test_client


def test_the_reranker_serves_a_request_that_names_no_model(client: TestClient) -> None:
    data = client.post("/v1/rerank", json={"query": "cat sleeps", "documents": DOCS}).json()
    assert data["model"] == "fake-rerank"
    scores = [r["relevance_score"] for r in data["results"]]
    assert data["results"][0]["index"] == 2 and scores[0] == 1.0  # both words
    assert scores == sorted(scores, reverse=True)
    card = client.get("/v1/models/fake-rerank").json()
    assert card["capabilities"] == ["rerank:cross-encoder"] and card["kind"] == "rerank"


def test_naming_the_embedding_model_uses_the_bi_encoder(client: TestClient) -> None:
    data = client.post(
        "/v1/rerank", json={"model": "fake-embed", "query": "a cat sleeps", "documents": DOCS}
    ).json()
    assert data["model"] == "fake-embed" and data["results"][0]["index"] == 2


def test_score_pairs_on_the_cross_encoder(client: TestClient) -> None:
    data = client.post(
        "/score", json={"model": "fake-rerank", "text_1": ["cat", "sun"], "text_2": ["a cat", "the moon"]}
    ).json()
    assert [d["score"] for d in data["data"]] == [1.0, 0.0]


def test_other_routes_refuse_a_reranker_clearly(client: TestClient) -> None:
    chat = client.post(
        "/v1/chat/completions", json={"model": "fake-rerank", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert 400 <= chat.status_code < 500 and "error" in chat.json()
    embed = client.post("/v1/embeddings", json={"model": "fake-rerank", "input": "x"})
    assert 400 <= embed.status_code < 500
    infer = client.post(
        "/v2/models/fake-rerank/infer",
        json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x"]}]},
    )
    assert infer.status_code == 400 and "rerank" in infer.json()["error"]
