"""Rerank (Cohere's and Jina's shapes, on /v1/rerank, /v2/rerank and /rerank) and vLLM's /score,
on the embedding model as a bi-encoder: sorted results, top_n, documents back or not, usage,
errors in OpenAI's shape on every path, the usage row and the key's limits; and once on the real
default embedding model, which must put the relevant document first."""

from __future__ import annotations

import cohere
import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import MakeKey
from tests.helpers.fake_server import FakeHearth
from tests.helpers.keys import bearer
from tests.helpers.ledger import rows
from tests.helpers.live import LiveServer

DOCS = ["something else entirely", "the cat sat on the mat", {"text": "a dog in the park", "id": "d3"}]
BODY = {"model": "fake-embed", "query": "the cat sat on the mat", "documents": DOCS}


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank", "/rerank"])
def test_rerank_sorts_and_returns_the_documents(client: TestClient, path: str) -> None:
    reply = client.post(path, json={**BODY, "top_n": 2})
    assert reply.status_code == 200, reply.text
    data = reply.json()
    results = data["results"]
    assert len(results) == 2 and results[0]["index"] == 1
    assert results[0]["relevance_score"] == pytest.approx(1.0, abs=1e-5)  # the query itself
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]
    assert results[0]["document"] == {"text": DOCS[1]}
    assert data["usage"]["total_tokens"] > 0 and data["meta"]["billed_units"]["search_units"] == 1
    assert data["model"] == "fake-embed"


def test_rerank_without_documents_back_and_every_index(client: TestClient) -> None:
    data = client.post("/v1/rerank", json={**BODY, "return_documents": False}).json()
    assert sorted(r["index"] for r in data["results"]) == [0, 1, 2]
    assert all("document" not in r for r in data["results"])
    scores = [r["relevance_score"] for r in data["results"]]
    assert scores == sorted(scores, reverse=True)
    listed = client.get("/v1/models").json()["data"]
    assert "rerank:bi-encoder" in next(m for m in listed if m["id"] == "fake-embed")["capabilities"]


def test_object_documents_rank_by_their_field(client: TestClient) -> None:
    docs = [{"title": "cats", "body": "the cat sat on the mat"}, {"title": "dogs", "body": "a dog"}]
    data = client.post("/v1/rerank", json={**BODY, "documents": docs, "rank_fields": ["body"]}).json()
    assert data["results"][0]["index"] == 0 and data["results"][0]["document"] == docs[0]
    missing = client.post("/v1/rerank", json={**BODY, "documents": [{"title": "no text"}]})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "documents[0]"


def test_score_one_against_many_and_pairs(client: TestClient) -> None:
    one = client.post(
        "/score", json={"model": "fake-embed", "text_1": "a b", "text_2": ["a b", "c d"]}
    ).json()
    assert [d["index"] for d in one["data"]] == [0, 1] and one["data"][0]["score"] == pytest.approx(
        1.0, abs=1e-5
    )
    assert (
        one["object"] == "list" and one["data"][0]["object"] == "score" and one["usage"]["total_tokens"] > 0
    )
    pairs = client.post(
        "/v1/score", json={"model": "fake-embed", "text_1": ["x", "y"], "text_2": ["x", "y"]}
    ).json()
    assert [round(d["score"], 5) for d in pairs["data"]] == [1.0, 1.0]
    wrong = client.post(
        "/v1/score", json={"model": "fake-embed", "text_1": ["x", "y"], "text_2": ["a", "b", "c"]}
    )
    assert wrong.status_code == 400 and "text_1" in wrong.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank", "/rerank", "/score"])
def test_bad_input_gets_openais_error_shape(client: TestClient, path: str) -> None:
    body = {"model": "fake-embed", "query": "q", "documents": []} if "rerank" in path else {"text_1": "a"}
    reply = client.post(path, json=body)
    assert reply.status_code in (400, 422) and reply.json()["error"]["type"] == "invalid_request_error", (
        reply.text
    )
    unknown = client.post(path, json={**BODY, "model": "nope", "text_1": "a", "text_2": "b"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    broken = client.post(path, content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code in (400, 422) and "error" in broken.json()


def test_rerank_writes_a_row_and_spends_the_keys_limits(gw: TestClient, make_key: MakeKey) -> None:
    headers = bearer(make_key("ranker", rpm=2))
    assert gw.post("/v1/rerank", json=BODY, headers=headers).status_code == 200
    assert gw.post("/v2/rerank", json=BODY, headers=headers).status_code == 200
    assert gw.post("/rerank", json=BODY, headers=headers).status_code == 429
    assert gw.post("/v1/rerank", json=BODY).status_code == 401
    recorded = [(r["route"], r["status_code"]) for r in rows(gw) if "rerank" in r["route"]]
    assert ("POST /v1/rerank", 200) in recorded and ("POST /v2/rerank", 200) in recorded
    assert ("POST /rerank", 429) in recorded
    assert all(
        r["prompt_tokens"] > 0
        for r in rows(gw)
        if r["route"] == "POST /v1/rerank" and r["status_code"] == 200
    )


@pytest.mark.real
def test_the_default_embedding_model_puts_the_relevant_document_first(real_server: LiveServer) -> None:
    documents = [
        "Bananas are a good source of potassium.",
        "Paris is the capital and largest city of France.",
        "The Great Wall of China is thousands of kilometres long.",
        "Berlin is the capital of Germany.",
    ]
    body = {"query": "What is the capital of France?", "documents": documents, "top_n": 2}
    data = httpx.post(real_server.url + "/v1/rerank", json=body, timeout=60).json()
    assert data["model"] == "all-minilm-l6-v2" and data["results"][0]["index"] == 1, data
    assert data["results"][1]["index"] == 3  # the other capital before the bananas
    scored = httpx.post(
        real_server.url + "/score", json={"text_1": body["query"], "text_2": documents}, timeout=60
    ).json()
    assert max(range(4), key=lambda i: scored["data"][i]["score"]) == 1


def test_the_official_cohere_sdk_reranks_through_hearth(hearth: FakeHearth, api_key: str) -> None:
    """Cohere's own SDK, v1 and v2 clients, with only the base URL changed."""
    docs = ["something else entirely", "the cat sat on the mat", "a dog in the park"]
    v2 = cohere.ClientV2(api_key=api_key, base_url=hearth.url)
    ranked = v2.rerank(model="fake-embed", query="the cat sat on the mat", documents=docs, top_n=2)
    assert ranked.results[0].index == 1 and len(ranked.results) == 2
    assert ranked.results[0].relevance_score == pytest.approx(1.0, abs=1e-5)
    v1 = cohere.Client(api_key=api_key, base_url=hearth.url)
    again = v1.rerank(model="fake-embed", query="the cat sat on the mat", documents=docs)
    assert again.results[0].index == 1 and len(again.results) == 3
    with pytest.raises(cohere.core.ApiError) as refused:
        cohere.ClientV2(api_key="hk-wrong", base_url=hearth.url).rerank(
            model="fake-embed", query="q", documents=docs
        )
    assert refused.value.status_code == 401


@pytest.mark.real
def test_langchains_cohere_reranker_pointed_at_hearth(real_server: LiveServer) -> None:
    """A retrieval framework's reranker, only its base URL changed: LangChain's CohereRerank
    compressing retrieved documents on the default embedding model."""
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document

    reranker = CohereRerank(
        model="all-minilm-l6-v2", base_url=real_server.url, cohere_api_key="not-needed-with-no-auth", top_n=2
    )
    documents = [
        Document(page_content="Bananas are yellow fruit rich in potassium.", metadata={"id": "fruit"}),
        Document(
            page_content="The Eiffel Tower is a wrought-iron tower in Paris, France.",
            metadata={"id": "tower"},
        ),
        Document(page_content="Python is a programming language.", metadata={"id": "code"}),
    ]
    ranked = reranker.compress_documents(documents, "Which tower stands in Paris?")
    assert ranked[0].metadata["id"] == "tower" and len(ranked) == 2
    assert ranked[0].metadata["relevance_score"] > ranked[1].metadata["relevance_score"]
