"""Rollout routes: a public model id that sends each request to one of several model variants.

    canary      each request picks a variant by weight
    ab          the same weights, but sticky per API key: a key keeps its variant while the
                route is unchanged (the bucket is a hash of key, alias and route version)
    blue-green  one variant (weight 100) takes everything; a PUT switches it atomically, and
                requests already running finish on the variant they started on
    shadow      the live variants answer as for canary; a copy of each chat goes to ``shadow``
                off the request path, and only its agreement with the live answer is kept

Picking happens once, when a request resolves its model, so no request is ever served by a mix.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from hearth.config import ModelKind
from hearth.errors import InvalidRequest

Strategy = Literal["canary", "ab", "blue-green", "shadow"]
STRATEGIES: tuple[Strategy, ...] = ("canary", "ab", "blue-green", "shadow")


@dataclass(frozen=True)
class Variant:
    model: str  # a model id
    weight: float


@dataclass(frozen=True)
class Route:
    alias: str
    strategy: Strategy
    variants: tuple[Variant, ...]
    shadow: str | None = None
    version: int = 0
    origin: Literal["config", "admin"] = "admin"
    _cumulative: tuple[float, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        total, steps = 0.0, []
        for variant in self.variants:
            total += variant.weight
            steps.append(total)
        object.__setattr__(self, "_cumulative", tuple(steps))

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "strategy": self.strategy,
            "variants": [{"model": v.model, "weight": v.weight} for v in self.variants],
            "shadow": self.shadow,
            "version": self.version,
            "origin": self.origin,
        }

    @property
    def primary(self) -> str:
        """The variant that stands for the route where no request picks one (its metadata)."""
        return max(self.variants, key=lambda v: v.weight).model

    def pick(self, key_ident: str | None, rng: random.Random) -> str:
        """The model id that serves one request."""
        if self.strategy == "blue-green":
            return next(v.model for v in self.variants if v.weight > 0)
        if self.strategy == "ab" and key_ident is not None:
            digest = hashlib.sha256(f"{self.alias}\0{self.version}\0{key_ident}".encode()).digest()
            point = int.from_bytes(digest[:8], "big") / 2**64 * 100
        else:  # canary, shadow's live side, and A/B without keys (--no-auth): per request
            point = rng.random() * 100
        for variant, edge in zip(self.variants, self._cumulative, strict=True):
            if point < edge:
                return variant.model
        return self.variants[-1].model


class RouteTable:
    """The rollout routes in force on this replica, by alias: what the resolver reads, and what
    the replica sync replaces whole whenever the config or the shared database changes them."""

    def __init__(self) -> None:
        self.routes: Mapping[str, Route] = {}
        self.version = -1  # the shared database's routes version they came from

    def get(self, alias: str) -> Route | None:
        return self.routes.get(alias)


def build_route(
    alias: str,
    body: Mapping[str, Any],
    names: Mapping[str, str],
    kinds: Mapping[str, ModelKind],
    *,
    version: int = 0,
    origin: Literal["config", "admin"] = "admin",
) -> Route:
    """Check a route against the models this replica knows; model names become ids."""
    strategy = body.get("strategy")
    if strategy not in STRATEGIES:
        raise InvalidRequest(f"strategy must be one of {', '.join(STRATEGIES)}", param="strategy")
    if alias in kinds:
        raise InvalidRequest(f"{alias!r} is a model id; a route needs a name of its own", param="alias")
    raw = body.get("variants")
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("variants must be a non-empty list of {model, weight}", param="variants")
    variants: list[Variant] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("model"), str):
            raise InvalidRequest("each variant needs a model", param=f"variants[{index}].model")
        weight = item.get("weight", 100 if len(raw) == 1 else None)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 100:
            raise InvalidRequest("weight must be a number from 0 to 100", param=f"variants[{index}].weight")
        variants.append(Variant(_model_id(item["model"], names, f"variants[{index}].model"), float(weight)))
    if len({v.model for v in variants}) != len(variants):
        raise InvalidRequest("a model appears twice in variants", param="variants")
    total = sum(v.weight for v in variants)
    if abs(total - 100) > 1e-6:
        raise InvalidRequest(f"variant weights must add up to 100, not {total:g}", param="variants")
    if strategy == "blue-green" and sorted(v.weight for v in variants)[-1] != 100:
        raise InvalidRequest(
            "blue-green needs one variant with weight 100 and the others 0", param="variants"
        )
    shadow = body.get("shadow")
    if strategy == "shadow":
        if not isinstance(shadow, str):
            raise InvalidRequest("a shadow route needs a shadow model", param="shadow")
        shadow = _model_id(shadow, names, "shadow")
        if shadow in {v.model for v in variants}:
            raise InvalidRequest("the shadow must not also be a live variant", param="shadow")
    elif shadow is not None:
        raise InvalidRequest("shadow is only for the shadow strategy", param="shadow")
    used = {kinds[v.model] for v in variants} | ({kinds[shadow]} if shadow else set())
    if len(used) > 1:
        raise InvalidRequest(
            "every variant (and the shadow) must be the same kind of model", param="variants"
        )
    if strategy == "shadow" and used != {ModelKind.CHAT}:
        raise InvalidRequest("shadow routes are for chat models", param="shadow")
    return Route(alias, cast(Strategy, strategy), tuple(variants), shadow, version, origin)


def _model_id(name: str, names: Mapping[str, str], param: str) -> str:
    model_id = names.get(name)
    if model_id is None:
        raise InvalidRequest(f"there is no model {name!r} on this server", param=param)
    return model_id
