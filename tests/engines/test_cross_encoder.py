"""A configured cross-encoder reranker (``kind: rerank``, ``backend: sentence-transformers``): a
tiny randomly initialised BERT built here, served through /v1/rerank and /score, gives exactly
the scores sentence-transformers' CrossEncoder gives in process, sorted, with tokens counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.helpers.apps import fake_models, fake_settings, wait_ready

WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "a",
    "dog",
    "ran",
    "in",
    "park",
    "what",
    "is",
    "capital",
    "of",
    "france",
    "paris",
    "berlin",
]
QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "a dog ran in the park", "berlin", "the cat sat on the mat"]


def write_tiny_cross_encoder(directory: Path) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    directory.mkdir(parents=True)
    (directory / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]))
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt")).save_pretrained(str(directory))
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, num_labels=1)  # fmt: skip
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_cross_encoder(tmp_path_factory.mktemp("cross") / "tiny-cross")


def expected_scores(directory: Path) -> list[float]:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(directory), device="cpu", local_files_only=True)
    return [float(s) for s in model.predict([(QUERY, d) for d in DOCS])]


def test_a_configured_cross_encoder_reranks_as_sentence_transformers_does(tiny: Path, tmp_path: Path) -> None:
    spec = {"id": "tiny-cross", "kind": "rerank", "backend": "sentence-transformers", "source": str(tiny)}
    models = [*[m.model_dump() for m in fake_models()], spec]
    with TestClient(build_app(fake_settings(tmp_path, models=models))) as client:
        wait_ready(client)
        card = next(m for m in client.get("/v1/models").json()["data"] if m["id"] == "tiny-cross")
        assert card["kind"] == "rerank" and card["capabilities"] == ["rerank:cross-encoder"]
        reply = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})  # no model: the reranker
        assert reply.status_code == 200, reply.text
        data = reply.json()
        assert data["model"] == "tiny-cross" and data["usage"]["total_tokens"] > 4 * len(QUERY.split())
        got = {r["index"]: r["relevance_score"] for r in data["results"]}
        want = expected_scores(tiny)
        assert np.allclose([got[i] for i in range(len(DOCS))], want, atol=1e-5)
        assert [r["index"] for r in data["results"]] == sorted(range(len(DOCS)), key=lambda i: -want[i])
        assert all(0.0 <= s <= 1.0 for s in want)  # one label: a sigmoid
        scored = client.post("/score", json={"text_1": QUERY, "text_2": DOCS}).json()
        assert np.allclose([d["score"] for d in scored["data"]], want, atol=1e-5)
        refused = client.post("/v1/embeddings", json={"model": "tiny-cross", "input": "x"})
        assert 400 <= refused.status_code < 500, refused.text
