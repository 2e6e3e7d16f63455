"""Fake engines: deterministic, weightless stand-ins so API, gateway and CLI tests run fast.

They honour the same contracts as the real engines (bounded queue, slots, cancellation, stop
strings, max_tokens, context length, output constraints), so tests of those contracts mean
something. A constrained generation is a seeded walk under the constraint's real grammar
(grammar_walk.py): JSON valid against the schema, or text/tool calls as the grammar allows, in
pieces of up to four characters counted as one token each. Prompts can steer them: ``FAIL_MIDSTREAM``
makes a generation fail after two tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from hearth.config import ModelSpec
from hearth.engines.base import (
    ChatEngine,
    ClassifierEngine,
    EmbeddingEngine,
    Embeddings,
    EngineActivity,
    GenerationDone,
    GenerationEvent,
    ModelFootprint,
    ModelInfo,
    PairScores,
    Prediction,
    RerankEngine,
    SamplingParams,
    TextDelta,
)
from hearth.engines.grammar_walk import walk
from hearth.errors import EngineFailure, Overloaded
from hearth.inference.types import Message, Tool

WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "runs", "away", "home")


FAIL_TOKEN = 999_999


class _Weightless:
    @classmethod
    def footprint(cls, spec: ModelSpec, data_dir: Path) -> ModelFootprint:
        return ModelFootprint(
            spec.id, spec.kind.value, "fake", 0, 0, memory_bytes=0, note="fake engine (tests)"
        )


class FakeChatEngine(_Weightless, ChatEngine):
    supports_constraints = True
    token_delay_s = 0.0  # tests raise it to keep streams open

    def load(self) -> None:
        self._slots = asyncio.Semaphore(self.spec.slots)
        self.waiting = 0
        self.running = 0
        self.cancelled = 0
        self.token_delay_s = float(self.spec.options.get("token_delay_s", 0.0))

    @property
    def context_length(self) -> int:
        return self.spec.context_length or 2048

    def tokenize(self, text: str) -> list[int]:
        return [1] + [FAIL_TOKEN if w == "FAIL_MIDSTREAM" else len(w) for w in text.split()]

    def render_chat(self, messages: Sequence[Message], tools: Sequence[Tool] = ()) -> str:
        listed = "".join(f"tool: {t.name}\n" for t in tools)
        return listed + "".join(f"{m.role}: {m.text}\n" for m in messages) + "assistant:"

    def chat_stop_sequences(self) -> tuple[str, ...]:
        return ("\nuser:",)

    async def generate(
        self, prompt: list[int], params: SamplingParams
    ) -> AsyncGenerator[GenerationEvent, None]:
        self.validate(prompt, params)
        if self._slots.locked() and self.waiting >= self.spec.max_queue:
            raise Overloaded("the server is busy: the request queue is full", retry_after=1)
        async for event in self._run(prompt, params):
            yield event

    async def _run(self, prompt: list[int], params: SamplingParams) -> AsyncGenerator[GenerationEvent, None]:
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        finished = False
        try:
            start = (params.seed or 0) + sum(prompt)
            if params.constraint is not None:
                async for event in self._constrained(prompt, params, start):
                    yield event
                finished = True
                return
            text = ""
            emitted = 0
            for n in range(params.max_tokens):
                if self.token_delay_s:
                    await asyncio.sleep(self.token_delay_s)
                word = WORDS[(start + n) % len(WORDS)]
                text += (" " if n else "") + word
                hit = next((s for s in params.stop if s in text), None)
                if hit:
                    cut = text.index(hit)
                    if cut > emitted:
                        yield TextDelta(text[emitted:cut])
                    finished = True
                    yield GenerationDone("stop", len(prompt), n + 1, stop_sequence=hit)
                    return
                yield TextDelta(text[emitted:])
                emitted = len(text)
                if n == 1 and FAIL_TOKEN in prompt:
                    raise EngineFailure("the fake engine failed mid-stream, as asked")
            finished = True
            yield GenerationDone("length", len(prompt), params.max_tokens)
        finally:
            if not finished:
                self.cancelled += 1
            self.running -= 1
            self._slots.release()

    async def _constrained(
        self, prompt: list[int], params: SamplingParams, start: int
    ) -> AsyncGenerator[GenerationEvent, None]:
        assert params.constraint is not None
        # Free text, where the grammar allows it, is the usual words; anything else is walked.
        words = " ".join(WORDS[(start + n) % len(WORDS)] for n in range(max(1, params.max_tokens // 2)))
        limit = 4 * params.max_tokens  # max_tokens pieces of up to 4 characters
        output, complete = await asyncio.to_thread(
            walk,  # a made-up answer: a plain random generator is right (bandit B311)
            params.constraint,
            random.Random(start),  # nosec B311
            max_bytes=limit,
            prefer=words.encode(),
        )
        text = output.decode("utf-8", errors="replace")
        hit = min((i for s in params.stop if s and (i := text.find(s)) >= 0), default=-1)
        if hit >= 0:
            text, complete = text[:hit], True
        pieces = [text[i : i + 4] for i in range(0, len(text), 4)][: params.max_tokens]
        for n, piece in enumerate(pieces):
            if self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
            yield TextDelta(piece)
            if n == 1 and FAIL_TOKEN in prompt:
                raise EngineFailure("the fake engine failed mid-stream, as asked")
        yield GenerationDone("stop" if complete else "length", len(prompt), len(pieces))

    def info(self) -> ModelInfo:
        return ModelInfo(self.spec.id, self.kind, "fake", parameters=0, context_length=self.context_length)

    def activity(self) -> EngineActivity:
        return EngineActivity(running=self.running, waiting=self.waiting)


class FakeEmbeddingEngine(_Weightless, EmbeddingEngine):
    dimensions = 8

    def load(self) -> None:
        pass

    async def embed(self, texts: list[str], *, truncate: bool = False) -> Embeddings:
        vectors = []
        for text in texts:
            digest = hashlib.sha256(text.encode()).digest()
            v = np.frombuffer(digest[: self.dimensions * 4], dtype=np.uint32).astype(np.float32)
            vectors.append(v / np.linalg.norm(v))
        return Embeddings(np.stack(vectors), [len(t.split()) + 2 for t in texts])

    def info(self) -> ModelInfo:
        return ModelInfo(
            self.spec.id,
            self.kind,
            "fake",
            parameters=0,
            context_length=512,
            extra={"dimensions": self.dimensions},
        )


class FakeRerankEngine(_Weightless, RerankEngine):
    """A cross-encoder stand-in: the share of the query's words the document holds."""

    def load(self) -> None:
        pass

    async def score_pairs(self, pairs: list[tuple[str, str]]) -> PairScores:
        scores = []
        for query, document in pairs:
            wanted = set(query.lower().split())
            scores.append(len(wanted & set(document.lower().split())) / max(1, len(wanted)))
        return PairScores(scores, [len(q.split()) + len(d.split()) + 3 for q, d in pairs])

    def info(self) -> ModelInfo:
        return ModelInfo(self.spec.id, self.kind, "fake", parameters=0, context_length=512)


class FakeClassifierEngine(_Weightless, ClassifierEngine):
    labels = ("tabby cat", "coffee mug", "rocket", "astronaut")

    def load(self) -> None:
        pass

    async def classify(self, image: Image.Image, top_k: int) -> list[Prediction]:
        # Deterministic in the image content: the mean brightness picks the winner.
        brightness = float(np.asarray(image.convert("L")).mean())
        first = int(brightness) % len(self.labels)
        order = [(first + i) % len(self.labels) for i in range(len(self.labels))]
        confidences = [0.7, 0.2, 0.07, 0.03]
        return [Prediction(self.labels[i], c, i) for i, c in zip(order, confidences, strict=True)][:top_k]

    def info(self) -> ModelInfo:
        return ModelInfo(self.spec.id, self.kind, "fake", parameters=0)
