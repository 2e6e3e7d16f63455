"""Rewrite the stored API descriptions the spec tests validate against, from upstream checkouts.

    python tests/specs/refresh.py --openai openapi.json --openai-rev <commit> \\
        --oip open_inference_rest.yaml --oip-rev <commit>

``--openai`` is ``openapi.json`` from github.com/openai/openai-openapi; only the schemas that
Hearth's answers are checked against, and every schema they reference, are kept (the whole file
is 3.4 MB). ``--oip`` is ``specification/protocol/open_inference_rest.yaml`` from
github.com/kserve/open-inference-protocol, kept whole. Each file records where it came from.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
OPENAI_ROOTS = (
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "CreateCompletionResponse",
    "CreateEmbeddingResponse",
    "ListModelsResponse",
    "Model",
    "Response",
    "ResponseStreamEvent",
    "ResponseItemList",
    "ErrorResponse",
)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def openai_subset(spec: dict[str, Any], revision: str) -> dict[str, Any]:
    schemas = spec["components"]["schemas"]
    kept: set[str] = set()
    todo = list(OPENAI_ROOTS)
    while todo:
        name = todo.pop()
        if name not in kept:
            kept.add(name)
            todo.extend(_refs(schemas[name]))
    return {
        "x-source": f"https://github.com/openai/openai-openapi/blob/{revision}/openapi.json",
        "openapi": spec["openapi"],
        "info": spec["info"],
        "components": {"schemas": {name: schemas[name] for name in sorted(kept)}},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--openai", type=Path, required=True)
    parser.add_argument("--openai-rev", required=True)
    parser.add_argument("--oip", type=Path, required=True)
    parser.add_argument("--oip-rev", required=True)
    args = parser.parse_args()
    subset = openai_subset(json.loads(args.openai.read_text()), args.openai_rev)
    (HERE / "openai-openapi.json").write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n")
    oip = yaml.safe_load(args.oip.read_text())
    oip["x-source"] = (
        "https://github.com/kserve/open-inference-protocol/blob/"
        f"{args.oip_rev}/specification/protocol/open_inference_rest.yaml"
    )
    (HERE / "open-inference-rest.json").write_text(json.dumps(oip, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
