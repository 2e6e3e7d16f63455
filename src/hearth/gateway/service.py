"""The gateway: who is calling (keys), may they (scope, limits), where it goes (the resolver), and
what it cost (the ledger row written when the call closes), with one method per capability.

Every API family's routes parse their protocol into the neutral types, call one of ``chat``,
``complete``, ``embed``, ``classify``, ``count_tokens`` or ``tokenize``, and render what comes
back; the policy (model resolution and scope, capability checks, prompt planning, token
reservation, priming, accounting, cancellation and the usage row) lives here, once. ``app.py``
builds the gateway's collaborators and hands them in; the Responses API and shadow traffic are
clients of the gateway, like the families.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence

from hearth import tracing
from hearth.config import ModelKind, Settings
from hearth.engines.base import (
    ChatEngine,
    ClassifierEngine,
    ConversationEngine,
    EmbeddingEngine,
    PairScores,
    RerankEngine,
    TextEngine,
)
from hearth.engines.fair_queue import Ticket, admitted_as
from hearth.engines.images import decode_image
from hearth.errors import AuthenticationFailed, InvalidRequest, Subject, Unsupported
from hearth.gateway import images, remote
from hearth.gateway.auth import GET_A_KEY, presented_secret
from hearth.gateway.call import Call, Identity
from hearth.gateway.fallbacks import with_fallbacks
from hearth.gateway.jobs import Job, LocalJob, RemoteJob
from hearth.gateway.keyring import KeyRing
from hearth.gateway.limits import Admission, Limiter
from hearth.gateway.planning import cache_point, chat_prompt, completion_prompts, plan
from hearth.gateway.priority import ticket_for
from hearth.gateway.resolver import Resolver
from hearth.gateway.shadow import ShadowJob, ShadowOutcome, ShadowRunner, agreement
from hearth.gateway.streams import GenerationStream
from hearth.gateway.tool_stream import ToolCallParser
from hearth.gateway.tools import FORMAT as TOOL_FORMAT
from hearth.gateway.tools import output_constraint, plan_tools
from hearth.inference.events import ChoiceResult, ClassifyResult, EmbedResult
from hearth.inference.types import (
    ChatRequest,
    ClassifyRequest,
    CompletionRequest,
    EmbedRequest,
    Family,
    Message,
    TextPart,
)
from hearth.store.keys import ApiKeyView
from hearth.store.ledger import LedgerWriter

log = logging.getLogger("hearth.gateway")

DURABLE_WAIT_S = 5.0


class Gateway:
    def __init__(
        self,
        settings: Settings,
        keys: KeyRing,
        limiter: Limiter,
        resolver: Resolver,
        ledger: LedgerWriter,
        shadows: ShadowRunner,
    ) -> None:
        self.settings = settings
        self.auth_enabled = not settings.no_auth
        self._keys = keys
        self._limiter = limiter
        self._resolver = resolver
        self._ledger = ledger
        self._shadows = shadows
        # Told of every closed call with its final status and error label (metrics); must not block.
        self.observers: list[Callable[[Call, int, str | None], None]] = []

    # -- calls ---------------------------------------------------------------------------------

    def open_call(self, request_id: str, family: Family, route: str, dedupe_key: str | None = None) -> Call:
        return Call(Identity(request_id, family, route, dedupe_key))

    def hand_off(self, call: Call, route: str) -> Call:
        """A call that carries on ``call``'s work after its HTTP response (background work).

        ``call`` closes as usual (its concurrency slot comes back) but writes no usage row: the
        new call writes the one row, when ``close_call`` closes it as the work ends. It reserves
        and refunds its own tokens (tpm, monthly budget), and has no concurrency slot: the
        caller bounds how much background work a key may have.
        """
        who = call.identity
        key = who.key
        taken = Call(
            Identity(who.request_id, who.family, route, key=key, authorized=True),
            dataclasses.replace(call.resolution, entry=None, shadow=None),
        )
        taken.identity.admission = None if key is None else Admission(key)
        call.handed_off = True
        return taken

    def batch_call(self, key: ApiKeyView | None, endpoint: str, batch_id: str, custom_id: str) -> Call:
        """One line of an accepted batch, as its key's call: scope, budget and token limits
        apply (the line reserves and refunds its tokens); the request rate does not."""
        family: Family = "anthropic" if endpoint == "/v1/messages" else "openai"
        who = Identity(f"req_{uuid.uuid4().hex}", family, f"POST {endpoint}", key=key, authorized=True)
        who.admission = None if key is None else Admission(key)
        who.batch_id, who.custom_id = batch_id, custom_id
        return Call(who)

    async def authorize(
        self, call: Call, authorization: str | None, x_api_key: str | None, *, reads_state: bool = False
    ) -> None:
        """Authenticate the caller and admit the call under its key's limits (once per call).

        ``reads_state``: the call only reads the server's own state (the models, the key's own
        usage). It still needs a working key, but spends none of the key's limits and writes no
        usage row: a client listing models before each request, or a console showing usage,
        must not use up the allowance it exists to spend.
        """
        who = call.identity
        if who.authorized:
            return
        who.authorized, who.reads_state = True, reads_state
        if not self.auth_enabled:
            return
        with tracing.span("auth"):
            key = await self._keys.lookup(presented_secret(authorization, x_api_key))
        if key is None:
            raise AuthenticationFailed(f"incorrect API key provided; {GET_A_KEY}")
        who.key = key
        if reads_state:
            return
        who.admission = Admission(key)
        with tracing.span("limits"):
            await self._limiter.admit(who.admission)

    async def close_call(
        self, call: Call, status: int, error: str | None = None, route: str | None = None
    ) -> None:
        """The response is sent (or the client is gone): give back the limits, write the row.

        ``error`` is the label of the error the response carried; ``route`` the route's template,
        once the router has matched one.
        """
        if call.closed:
            return
        call.closed = True
        who, served, meter = call.identity, call.resolution, call.metering
        if route is not None:
            who.route = route
        status = meter.failed_status or status
        error = meter.error_label or (error if status >= 400 else None)
        for observe in self.observers:
            observe(call, status, error)
        self._resolver.release(call)
        if who.admission is not None:
            await self._limiter.finish(who.admission, call.total_tokens)
            self._keys.spent(who.admission.key.id)
        if call.handed_off or who.reads_state or who.batch_id is not None:
            # Its row is written by the call that took its work over; a read has none; a batch
            # line's row is committed with the line itself (gateway/batches.py), exactly once.
            return
        if served.model is None and who.key is None and not self.auth_enabled:
            return  # nothing attributable: an anonymous request that never reached a model
        event = call.usage_event(status, error)
        with tracing.span("ledger"):
            if not self.settings.ledger_commit_wait:
                self._ledger.record(event)  # journaled now when the ledger is durable
                return
            try:
                await asyncio.wait_for(
                    asyncio.wrap_future(self._ledger.record_durable(event)), DURABLE_WAIT_S
                )
            except TimeoutError:  # the database is slow or away: answer anyway; the row stays queued
                log.warning("usage row of %s not committed within %.0fs", who.request_id, DURABLE_WAIT_S)

    def stream_began(self, call: Call) -> None:
        """A stream's first bytes are going out: the journal marks it, so that a crash before
        its end still leaves a row (not billed: docs/reliability.md)."""
        if call.metering.journal_mark is None and not call.handed_off:
            call.metering.journal_mark = self._ledger.mark(call.usage_event(200, None))

    # -- capabilities --------------------------------------------------------------------------

    async def chat(self, call: Call, request: ChatRequest) -> GenerationStream:
        async def attempt(model: str, fallback: bool) -> GenerationStream:
            job = await self.plan_chat(call, request, model, fallback=fallback)
            return await self.start_job(call, job, request.model, mirror=request, priority=request.priority)

        return await with_fallbacks(self._resolver, call, request.model, attempt)

    async def plan_chat(
        self, call: Call, request: ChatRequest, model: str | None = None, *, fallback: bool = False
    ) -> Job:
        """Every check and decision of ``chat`` short of generating: its errors are the caller's.

        Background work plans while its request is open and starts the job later. ``model`` is
        the model to plan for when it is not the one the request names (a fallback).
        """
        engine = await self._resolver.acquire(
            call, model or request.model, TextEngine, request.keep_alive_s, fallback=fallback
        )
        call.metering.stream = request.stream
        messages = await self._readable(call, engine, request.messages)
        if isinstance(engine, ConversationEngine):
            return remote.chat_job(engine, request, messages)
        assert isinstance(engine, ChatEngine)
        tools = plan_tools(engine, request, messages)
        room = request.sampling.max_tokens or 1
        prompt = await chat_prompt(
            engine,
            tools.messages,
            tools.template_tools,
            truncate_for=room if request.truncation == "auto" else None,
        )
        if request.cache_prefix is not None:
            call.metering.cache_point = await cache_point(engine, request, prompt)
            call.metering.cache_ttl_s = request.cache_prefix.ttl_s
        return plan(
            engine,
            [prompt] * request.n,
            request.sampling,
            chat=True,
            context_limit=request.num_ctx,
            family_defaults=request.sampling_defaults,
            constraint=tools.constraint,
            tool_calls=tools.calls,
            answered=tools.answered,
            answer=tools.answer,
            cache_key=request.cache_key,
        )

    async def complete(self, call: Call, request: CompletionRequest) -> GenerationStream:
        async def attempt(model: str, fallback: bool) -> GenerationStream:
            return await self._complete(call, request, model, fallback)

        return await with_fallbacks(self._resolver, call, request.model, attempt)

    async def _complete(
        self, call: Call, request: CompletionRequest, model: str, fallback: bool
    ) -> GenerationStream:
        engine = await self._resolver.acquire(
            call, model, TextEngine, request.keep_alive_s, fallback=fallback
        )
        call.metering.stream = request.stream
        if isinstance(engine, ConversationEngine):
            return await self.start_job(
                call, await self._remote_completion(call, engine, request), request.model
            )
        assert isinstance(engine, ChatEngine)
        constraint = None
        if request.output is not None:
            if not engine.supports_constraints:
                raise Unsupported(
                    f"the model {engine.spec.id!r} cannot constrain its output",
                    subject=Subject.OUTPUT_FORMAT,
                    param=request.output.param,
                )
            constraint = output_constraint(request.output)
        if request.raw:
            if request.images:
                raise Unsupported(
                    "images need the chat template: send them without raw", subject=Subject.IMAGES
                )
            prompts = await completion_prompts(engine, request.prompts)
        else:  # a bare prompt through the chat template (Ollama's /api/generate)
            head = [Message.of("system", request.system)] if request.system else []
            turns = [
                [*head, Message("user", (TextPart(p), *request.images))]
                for p in request.prompts
                if isinstance(p, str)
            ]
            prompts = [await chat_prompt(engine, await self._readable(call, engine, t)) for t in turns]
        job = plan(
            engine,
            [p for p in prompts for _ in range(request.n)],
            request.sampling,
            chat=not request.raw,
            context_limit=request.num_ctx,
            family_defaults=request.sampling_defaults,
            constraint=constraint,
        )
        return await self.start_job(call, job, request.model, priority=request.priority)

    async def _remote_completion(
        self, call: Call, engine: ConversationEngine, request: CompletionRequest
    ) -> RemoteJob:
        if request.raw:
            return remote.completion_job(engine, request)
        # A bare prompt through the model's own chat template (Ollama's /api/generate).
        head = [Message.of("system", request.system)] if request.system else []
        prompt = next((p for p in request.prompts if isinstance(p, str)), "")
        turn = [*head, Message("user", (TextPart(prompt), *request.images))]
        chat = ChatRequest(
            request.model,
            tuple(turn),
            request.sampling,
            n=request.n,
            stream=request.stream,
            output=request.output,
            sampling_defaults=request.sampling_defaults,
        )
        return remote.chat_job(engine, chat, await self._readable(call, engine, turn))

    async def start_job(
        self,
        call: Call,
        job: Job,
        model: str,
        mirror: ChatRequest | None = None,
        priority: int | None = None,
    ) -> GenerationStream:
        """Generate ``job`` for ``call``; ``mirror`` is the chat a shadow route copies once it
        ends; ``priority`` is the request's own (vLLM's field), within its key's class."""
        await self._reserve_tokens(call, job.worst_case_tokens)
        if isinstance(job, LocalJob) and self.settings.fair_admission:
            job.admit_as(ticket_for(call, priority))
        on_finish = None
        candidate = call.resolution.shadow
        if mirror is not None and candidate is not None:
            alias = call.resolution.model or model

            def on_finish(results: list[ChoiceResult]) -> None:
                self._shadows.offer(ShadowJob(call, alias, candidate, mirror, results[0].text))

        on_end = None
        if self.settings.ledger_durable and call.metering.stream:
            # A stream's row is committed before its last event goes out (see close_call).
            async def on_end() -> None:
                await self.close_call(call, 200)

        filters = (lambda _index: ToolCallParser(TOOL_FORMAT, job.answered)) if job.tool_calls else None
        stream = GenerationStream(call, job, model=model, filters=filters, on_finish=on_finish, on_end=on_end)
        return await stream.prime()

    async def run_shadow(self, job: ShadowJob) -> ShadowOutcome:
        """Answer one shadow copy off the request path, compare it, and write its own usage row
        (no key: it never counts against the caller's limits or budget)."""
        live = job.live.identity
        call = self.open_call(f"{live.request_id[:48]}-shadow", live.family, f"shadow {live.route}"[:128])
        call.identity.authorized, call.resolution.shadow_of = True, live.request_id
        request = dataclasses.replace(job.request, model=job.shadow_model, stream=False, n=1)
        try:
            stream = await self.chat(call, request)
            text = (await stream.collect())[0].text
        except Exception as exc:
            await self.close_call(call, getattr(exc, "status_code", 500))
            log.info("shadow %s for %s failed: %s", job.shadow_model, job.alias, exc)
            return ShadowOutcome(job.alias, job.shadow_model, "failed")
        exact, overlap = agreement(job.live_text, text)
        call.metering.exact_match, call.metering.agreement = exact, overlap
        latency = call.latency_ms() / 1000
        await self.close_call(call, 200)
        return ShadowOutcome(job.alias, job.shadow_model, "compared", exact, overlap, latency)

    async def count_tokens(self, call: Call, request: ChatRequest) -> int:
        engine = await self._resolver.acquire(call, request.model, TextEngine)
        messages = await self._readable(call, engine, request.messages)
        if isinstance(engine, ConversationEngine):  # the upstream's count, or a refusal
            return await engine.count_tokens(dataclasses.replace(request, messages=tuple(messages)))
        assert isinstance(engine, ChatEngine)
        tools = plan_tools(engine, request, messages)  # the prompt exactly as chat would render it
        return len(await chat_prompt(engine, tools.messages, tools.template_tools))

    async def tokenize(
        self, call: Call, model: str, *, text: str | None = None, messages: Sequence[Message] | None = None
    ) -> tuple[list[int], int]:
        """Token ids of a prompt or of rendered chat messages, and the model's context length."""
        engine = await self._resolver.acquire(call, model, TextEngine)
        if not isinstance(engine, ChatEngine):
            raise Unsupported(
                f"the model {engine.spec.id!r} is served by another server, whose token ids are its own",
                subject=Subject.MODEL,
            )
        if messages is not None:
            tokens = await chat_prompt(engine, await self._readable(call, engine, messages))
        else:
            tokens = (await completion_prompts(engine, [text or ""]))[0]
        return tokens, engine.context_length

    async def embed(self, call: Call, request: EmbedRequest) -> EmbedResult:
        async def attempt(model: str, fallback: bool) -> EmbedResult:
            return await self._embed(call, request, model, fallback)

        return await with_fallbacks(self._resolver, call, request.model, attempt)

    async def _embed(self, call: Call, request: EmbedRequest, model: str, fallback: bool) -> EmbedResult:
        engine = await self._resolver.acquire(
            call, model, EmbeddingEngine, request.keep_alive_s, fallback=fallback
        )
        texts = list(request.texts)
        if not texts:
            raise InvalidRequest("{input} must not be empty", subject=Subject.INPUT)
        with admitted_as(self._ticket(call)):
            result = await engine.embed(texts, truncate=request.truncate)
        dims = int(result.vectors.shape[1])
        if request.dimensions not in (None, dims):
            raise InvalidRequest(f"this model only produces {dims} dimensions", subject=Subject.DIMENSIONS)
        call.metering.prompt_tokens = sum(result.token_counts)
        return EmbedResult(engine.spec.id, result.vectors, result.token_counts)

    def default_model(self, kind: ModelKind) -> str:
        """The model a request that names none gets: the first configured of its kind."""
        return self._resolver.default_model(kind)

    def kind_of(self, call: Call, name: str) -> ModelKind:
        """The kind of model ``name`` stands for, for this caller (404 or 403 as a request would)."""
        return self._resolver.target(call.identity.key, name).spec.kind

    async def score_pairs(
        self, call: Call, model: str, pairs: list[tuple[str, str]]
    ) -> tuple[str, PairScores]:
        """A cross-encoder's scores of (query, document) pairs, and the model that gave them."""

        async def attempt(name: str, fallback: bool) -> tuple[str, PairScores]:
            engine = await self._resolver.acquire(call, name, RerankEngine, fallback=fallback)
            with admitted_as(self._ticket(call)):
                scored = await engine.score_pairs(pairs)
            call.metering.prompt_tokens = sum(scored.token_counts)
            return engine.spec.id, scored

        return await with_fallbacks(self._resolver, call, model, attempt)

    async def classify(self, call: Call, request: ClassifyRequest) -> ClassifyResult:
        name = request.model or self._resolver.default_model(ModelKind.IMAGE_CLASSIFICATION)
        engine = await self._resolver.acquire(call, name, ClassifierEngine)
        call.metering.images = 1
        image = await asyncio.to_thread(decode_image, request.image, self.settings.max_image_pixels)
        with admitted_as(self._ticket(call)):
            predictions = await engine.classify(image, request.top_k)
        return ClassifyResult(engine.spec.id, predictions)

    # -- helpers -------------------------------------------------------------------------------

    def _ticket(self, call: Call) -> Ticket | None:
        """The call's place in the engines' fair queues (None: first come, first served)."""
        return ticket_for(call) if self.settings.fair_admission else None

    async def _readable(
        self, call: Call, engine: TextEngine, messages: Sequence[Message]
    ) -> Sequence[Message]:
        """The conversation as the model reads it (``images.readable``)."""
        readable, described = await images.readable(engine, messages, self._resolver, self.settings)
        call.metering.images += described
        return readable

    async def _reserve_tokens(self, call: Call, tokens: int) -> None:
        if call.identity.admission is not None:
            await self._limiter.reserve_tokens(call.identity.admission, tokens)
