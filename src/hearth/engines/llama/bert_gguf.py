"""A sentence-transformers BERT directory, written once as a GGUF that llama.cpp serves.

Why: serving MiniLM through sentence-transformers means importing torch, transformers and
sentence-transformers, ~5 s of CPU, the longest step of a start. llama.cpp runs BERT encoders
itself (as Ollama serves ``all-minilm``), so the embedding model can live in the server's own
llama.cpp, and the weights only need rewriting: the ``gguf`` package (llama.cpp's own) names the
tensors and writes the file; ``safetensors`` reads them without torch. The weights stay float32,
so the vectors match sentence-transformers' to float rounding.

The GGUF is written into ``DATA_DIR/models/`` beside a marker recording the size and mtime of
the files it came from; later starts reuse it. What the GGUF cannot say (the tokenizer's exact
behaviour, truncation length, normalisation) is read from the directory at load: see
``SentenceBertLayout``.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hearth.engines.sources import ModelSourceError

# Bump when the written file would change, so older conversions are redone.
CONVERTER_VERSION = 2
_SOURCE_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_POOLING = "sentence_transformers.models.Pooling"
_ALLOWED_MODULES = {
    "sentence_transformers.models.Transformer",
    _POOLING,
    "sentence_transformers.models.Normalize",
}


@dataclass(frozen=True)
class SentenceBertLayout:
    """What a sentence-transformers directory says about running its model."""

    directory: Path
    max_seq_length: int
    pooling: str  # "mean" or "cls"
    normalize: bool

    @classmethod
    def read(cls, directory: Path) -> SentenceBertLayout:
        config = _json(directory / "config.json")
        if config.get("model_type") != "bert":
            raise ModelSourceError(
                f"{directory}: model_type {config.get('model_type')!r} is not BERT; serve it with "
                "backend sentence-transformers"
            )
        missing = [name for name in _SOURCE_FILES if not (directory / name).is_file()]
        if missing:
            raise ModelSourceError(f"{directory}: missing {', '.join(missing)}")
        modules = _json(directory / "modules.json") if (directory / "modules.json").is_file() else []
        unknown = sorted({m.get("type", "") for m in modules} - _ALLOWED_MODULES)
        if unknown:
            raise ModelSourceError(
                f"{directory}: llama.cpp cannot run the sentence-transformers modules {unknown}; "
                "serve it with backend sentence-transformers"
            )
        pooling = "mean"
        for module in modules:
            if module.get("type") == _POOLING:
                pooling = _pooling_mode(_json(directory / module["path"] / "config.json"), directory)
        st_config = directory / "sentence_bert_config.json"
        max_seq = _json(st_config).get("max_seq_length") if st_config.is_file() else None
        return cls(
            directory=directory,
            max_seq_length=int(max_seq or config.get("max_position_embeddings", 512)),
            pooling=pooling,
            normalize=any(m.get("type", "").endswith(".Normalize") for m in modules),
        )


def _pooling_mode(config: dict[str, Any], directory: Path) -> str:
    modes = [key for key, on in config.items() if key.startswith("pooling_mode_") and on]
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    raise ModelSourceError(
        f"{directory}: pooling {modes} is not one llama.cpp has; serve it with backend sentence-transformers"
    )


def _json(path: Path) -> Any:
    with path.open(encoding="utf-8") as file:
        return json.load(file)


def _fingerprint(layout: SentenceBertLayout) -> dict[str, Any]:
    files = {}
    for name in _SOURCE_FILES:
        stat = (layout.directory / name).stat()
        files[name] = [stat.st_size, stat.st_mtime_ns]
    return {"converter": CONVERTER_VERSION, "pooling": layout.pooling, "files": files}


def converted_gguf(layout: SentenceBertLayout, data_dir: Path) -> Path:
    """The GGUF for ``layout``, written now unless an up-to-date one is already there."""
    target = data_dir / "models" / f"{layout.directory.parent.name}-{layout.directory.name}.f32.gguf"
    marker = target.with_name(target.name + ".source")
    fingerprint = _fingerprint(layout)
    try:
        if target.is_file() and json.loads(marker.read_text()) == fingerprint:
            return target
    except (OSError, ValueError):
        pass  # no marker, or a damaged one: convert again
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        _write(layout, scratch)
        os.replace(scratch, target)  # atomic: a concurrent start sees the old file or the new
    finally:
        scratch.unlink(missing_ok=True)
    marker.write_text(json.dumps(fingerprint))
    return target


def _write(layout: SentenceBertLayout, path: Path) -> None:
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    directory = layout.directory
    config = _json(directory / "config.json")
    blocks = int(config["num_hidden_layers"])
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    writer.add_name(directory.parent.name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(blocks)
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN if layout.pooling == "mean" else gguf.PoolingType.CLS)
    _write_vocab(writer, directory, int(config.get("type_vocab_size", 2)))

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, blocks)
    for name, array in load_file(str(directory / "model.safetensors")).items():
        name = name.removeprefix("bert.")
        if name == "embeddings.position_ids" or name.startswith(("pooler.", "cls.")):
            continue  # buffers, and heads an embedding model does not use
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ModelSourceError(f"{directory}: no GGUF name for BERT tensor {name!r}")
        writer.add_tensor(gguf_name, np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _write_vocab(writer: Any, directory: Path, token_types: int) -> None:
    """The WordPiece vocabulary in llama.cpp's "phantom space" spelling.

    llama.cpp's BERT tokenizer marks a word's first piece with U+2581 where WordPiece marks the
    others with ``##``. Hearth tokenizes with the directory's own ``tokenizer.json`` (exactly as
    sentence-transformers does), but llama.cpp still loads and checks this vocabulary.
    """
    import gguf

    tokenizer = _json(directory / "tokenizer.json")
    if tokenizer.get("model", {}).get("type") != "WordPiece":
        raise ModelSourceError(f"{directory}: the tokenizer is not WordPiece")
    by_id = sorted(tokenizer["model"]["vocab"].items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ModelSourceError(f"{directory}: the vocabulary's ids are not 0..n-1")
    special = {t["content"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    tokens, types = [], []
    for text, _ in by_id:
        if text in special:
            tokens.append(text)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(text[2:] if text.startswith("##") else "\u2581" + text)
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(token_types)
    ids = {text: i for text, i in by_id}
    config = (
        _json(directory / "tokenizer_config.json") if (directory / "tokenizer_config.json").is_file() else {}
    )
    for role, add in (
        ("cls_token", writer.add_bos_token_id),  # llama.cpp's BERT opens with BOS: [CLS]
        ("sep_token", writer.add_sep_token_id),
        ("pad_token", writer.add_pad_token_id),
        ("unk_token", writer.add_unk_token_id),
        ("mask_token", writer.add_mask_token_id),
    ):
        if (token := config.get(role)) in ids:
            add(ids[token])
