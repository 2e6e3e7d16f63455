"""BERT embeddings on llama.cpp: the GGUF conversion, its reuse, refusals, and the engine itself.

A tiny random BERT (2 layers, 32 wide) is written here as a sentence-transformers directory, so
these tests run in seconds; the real MiniLM against sentence-transformers is the last test
(marked ``real``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from hearth.config import ModelKind, ModelSpec
from hearth.engines.context import EngineContext
from hearth.engines.llama.bert_gguf import SentenceBertLayout, converted_gguf
from hearth.engines.llama.embedding import LlamaEmbeddingEngine
from hearth.engines.registry import engine_class
from hearth.engines.sources import ModelSourceError
from hearth.errors import ContextLengthExceeded

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "##s", "##ing", "a", "."]
HIDDEN, LAYERS, FFN, HEADS, POSITIONS = 32, 2, 64, 4, 64


def write_tiny_bert(directory: Path, *, max_seq_length: int = 16, pooling: str = "mean") -> Path:
    directory.mkdir(parents=True)
    vocab = {token: i for i, token in enumerate(SPECIAL + WORDS)}
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS, "intermediate_size": FFN, "num_attention_heads": HEADS,
        "max_position_embeddings": POSITIONS, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "vocab_size": len(vocab),
    }  # fmt: skip
    (directory / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)

    def dense(rows: int, cols: int) -> np.ndarray:
        return rng.normal(0, 0.2, (rows, cols)).astype(np.float32)

    tensors = {
        "embeddings.word_embeddings.weight": dense(len(vocab), HIDDEN),
        "embeddings.position_embeddings.weight": dense(POSITIONS, HIDDEN),
        "embeddings.token_type_embeddings.weight": dense(2, HIDDEN),
        "embeddings.LayerNorm.weight": np.ones(HIDDEN, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(HIDDEN, np.float32),
        "embeddings.position_ids": np.arange(POSITIONS, dtype=np.int64)[None],
        "pooler.dense.weight": dense(HIDDEN, HIDDEN),
    }
    for layer in range(LAYERS):
        prefix = f"encoder.layer.{layer}."
        for name, rows, cols in (
            ("attention.self.query", HIDDEN, HIDDEN),
            ("attention.self.key", HIDDEN, HIDDEN),
            ("attention.self.value", HIDDEN, HIDDEN),
            ("attention.output.dense", HIDDEN, HIDDEN),
            ("intermediate.dense", FFN, HIDDEN),
            ("output.dense", HIDDEN, FFN),
        ):
            tensors[prefix + name + ".weight"] = dense(rows, cols)
            tensors[prefix + name + ".bias"] = np.zeros(rows, np.float32)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[prefix + norm + ".weight"] = np.ones(HIDDEN, np.float32)
            tensors[prefix + norm + ".bias"] = np.zeros(HIDDEN, np.float32)
    save_file(tensors, str(directory / "model.safetensors"))

    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tokenizer.add_special_tokens(SPECIAL)
    tokenizer.enable_truncation(8)  # as shipped files often carry one: the engine must override it
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]"})
    )
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "1_Pooling").mkdir()
    (directory / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {"pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_cls_token": pooling == "cls"}
        )
    )
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    return directory


def spec_for(directory: Path) -> ModelSpec:
    return ModelSpec(id="tiny-bert", kind=ModelKind.EMBEDDING, backend="llama.cpp", source=str(directory))


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_tiny_bert(tmp_path / "tiny")


def test_conversion_is_written_once_and_redone_when_the_weights_change(tiny: Path, tmp_path: Path) -> None:
    layout = SentenceBertLayout.read(tiny)
    assert (layout.max_seq_length, layout.pooling, layout.normalize) == (16, "mean", True)
    first = converted_gguf(layout, tmp_path / "data")
    written = first.stat().st_mtime_ns
    assert converted_gguf(layout, tmp_path / "data") == first and first.stat().st_mtime_ns == written
    weights = tiny / "model.safetensors"  # a source file that changed: convert again
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert converted_gguf(layout, tmp_path / "data").stat().st_mtime_ns != written
    assert [p.name for p in (tmp_path / "data" / "models").iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda d: _edit_json(d / "config.json", model_type="roberta"), "not BERT"),
        (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json"),
        (lambda d: _edit_json(d / "1_Pooling" / "config.json", pooling_mode_max_tokens=True), "pooling"),
        (lambda d: _add_module(d, "sentence_transformers.models.Dense"), "Dense"),
    ],
)
def test_directories_llama_cpp_cannot_run_are_refused_with_the_reason(tiny: Path, damage, named: str) -> None:  # type: ignore[no-untyped-def]
    damage(tiny)
    with pytest.raises(ModelSourceError, match=named):
        SentenceBertLayout.read(tiny)


def _edit_json(path: Path, **changes: object) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _add_module(directory: Path, kind: str) -> None:
    modules = json.loads((directory / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": kind})
    (directory / "modules.json").write_text(json.dumps(modules))


def test_engine_embeds_batches_truncates_and_refuses_overlong(tiny: Path, tmp_path: Path) -> None:
    spec = spec_for(tiny)
    assert engine_class(spec) is LlamaEmbeddingEngine
    engine = LlamaEmbeddingEngine(spec, EngineContext(tmp_path / "data"))
    engine.load()
    try:
        texts = ["the cat sat on the mat", "a dog ran far", "the cat sat on the mat", "cats"]
        result = asyncio.run(engine.embed(texts))
        assert result.vectors.shape == (4, HIDDEN) and result.vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
        # The same text gives the same vector in any batch, to float rounding (sums run in other orders).
        np.testing.assert_allclose(result.vectors[0], result.vectors[2], atol=2e-4)
        assert result.token_counts == [8, 6, 8, 4]  # [CLS] ... [SEP], and "cats" is cat ##s
        alone = asyncio.run(engine.embed(["a dog ran far"]))
        np.testing.assert_allclose(alone.vectors[0], result.vectors[1], atol=2e-4)

        long_text = " ".join(["the cat"] * 10)  # 22 tokens against a maximum of 16
        with pytest.raises(ContextLengthExceeded, match="22 tokens"):
            asyncio.run(engine.embed(["ok", long_text]))
        cut = asyncio.run(engine.embed([long_text], truncate=True))
        assert cut.token_counts == [16]
        # More texts than one llama_encode takes (64 sequences) still come back in order.
        many = asyncio.run(engine.embed([texts[i % 4] for i in range(150)]))
        np.testing.assert_allclose(many.vectors[149], result.vectors[1], atol=2e-4)
        info = engine.info()
        assert (info.backend, info.context_length, info.extra["dimensions"]) == ("llama.cpp", 16, HIDDEN)
    finally:
        engine.close()
    with pytest.raises(Exception, match="not loaded"):
        asyncio.run(engine.embed(["the cat"]))


def test_cls_pooling_differs_from_mean(tmp_path: Path) -> None:
    vectors = {}
    for pooling in ("mean", "cls"):
        directory = write_tiny_bert(tmp_path / pooling, pooling=pooling)
        engine = LlamaEmbeddingEngine(spec_for(directory), EngineContext(tmp_path / "data"))
        engine.load()
        try:
            vectors[pooling] = asyncio.run(engine.embed(["the cat sat"])).vectors[0]
        finally:
            engine.close()
    assert float(vectors["mean"] @ vectors["cls"]) < 0.999
    shutil.rmtree(tmp_path / "data")


# -- the real MiniLM against sentence-transformers ---------------------------------------------


@pytest.mark.real
def test_real_minilm_on_llama_cpp_matches_sentence_transformers(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from hearth.config import default_models
    from hearth.engines.embeddings import sentence_transformers_dir

    spec = next(s for s in default_models() if s.id == "all-minilm-l6-v2")
    assert spec.backend == "llama.cpp" and engine_class(spec) is LlamaEmbeddingEngine
    texts = [
        "The cat sat on the mat.",
        "A kitten naps on the couch.",
        "I filed my tax return today.",
        "Café naïve résumé, Straße und Übermaß",
        "東京タワーは赤い 🎉 emoji, URLs like https://example.com/a?b=c and numbers 3.14159",
        "word " * 400,  # past max_seq_length (256): truncated, as sentence-transformers does
        "",
    ]
    engine = LlamaEmbeddingEngine(spec, EngineContext(tmp_path))
    engine.load()
    try:
        ours = asyncio.run(engine.embed(texts, truncate=True))
        counts = engine.count_tokens(texts)
    finally:
        engine.close()
    reference = SentenceTransformer(str(sentence_transformers_dir(spec)), device="cpu")
    expected = reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    cosines = (ours.vectors * expected).sum(axis=1)
    assert cosines.min() > 0.99999, cosines
    np.testing.assert_allclose(ours.vectors, expected, atol=1e-3)
    reference_counts = [len(ids) for ids in reference.tokenizer(texts, truncation=False)["input_ids"]]
    assert counts == reference_counts and ours.token_counts == [min(n, 256) for n in reference_counts]
    # And it means something: the paraphrase is the nearest neighbour.
    assert float(ours.vectors[0] @ ours.vectors[1]) > float(ours.vectors[0] @ ours.vectors[2])
