"""The gateway: who is calling (keys), may they (scope, limits), where it goes (routing), and
what it cost (the ledger row written when the call closes), with one method per capability.

Every API family's routes parse their protocol into the neutral types, call one of ``chat``,
``complete``, ``embed``, ``classify`` or ``count_tokens``, and render what comes back; the
policy (model resolution and scope, capability checks, prompt planning, token reservation,
priming, accounting, cancellation and the usage row) lives here, once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from hearth.config import ModelKind, Settings
from hearth.engines.base import ChatEngine, ClassifierEngine, EmbeddingEngine, Engine
from hearth.engines.images import decode_image
from hearth.engines.registry import ModelRegistry
from hearth.errors import (
    AuthenticationFailed,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    Unsupported,
)
from hearth.gateway.accounts import Accounts
from hearth.gateway.auth import presented_secret
from hearth.gateway.call import Call
from hearth.gateway.catalog import Catalog
from hearth.gateway.cluster import Cluster
from hearth.gateway.images import describe_images
from hearth.gateway.keyring import KeyRing
from hearth.gateway.limits import Admission, Limiter
from hearth.gateway.planning import GenerationJob, chat_prompt, completion_prompts, plan
from hearth.gateway.responses import Responses
from hearth.gateway.shadow import ShadowJob, ShadowRunner
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
from hearth.store.database import Database
from hearth.store.ledger import UsageEvent

log = logging.getLogger("hearth.gateway")
E = TypeVar("E", bound=Engine)

DURABLE_WAIT_S = 5.0


class Gateway:
    def __init__(
        self, settings: Settings, registry: ModelRegistry, database: Database, limiter: Limiter | None = None
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.db = database
        self.auth_enabled = not settings.no_auth
        self.keys = KeyRing(database)
        self.limiter = limiter or Limiter(settings.redis_url, self.keys.month_usage)
        self.accounts = Accounts(database, self.forget_keys)
        self.catalog = Catalog(registry)
        self.cluster = Cluster(database, registry, settings.routes, settings.redis_url)
        self.shadows = ShadowRunner(self._answer_shadow, self._open_shadow_call, self.close_call)
        self.responses = Responses(self)  # stored and background responses (/v1/responses)
        self._rng = random.Random()
        self._background: list[asyncio.Task[None]] = []
        # Told of every closed call with its final status and error code (metrics); must not block.
        self.observers: list[Callable[[Call, int, str | None], None]] = []
        self.draining = False  # SIGTERM: readiness fails so load balancers move away

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the database, then keep routes and run-time models in step with it."""
        self.cluster.load_config_routes()
        await self.db.connect()
        await self.cluster.sync()
        await self.responses.start()
        self._background += [
            asyncio.create_task(self.cluster.run(), name="cluster-sync"),
            asyncio.create_task(self.shadows.run(), name="shadow-worker"),
            asyncio.create_task(self._unload_idle(), name="keep-alive"),
        ]

    async def _unload_idle(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.registry.unload_idle()

    async def close(self) -> None:
        await self.responses.close()  # background work still running ends failed, with a reason
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        # Graceful shutdown (SIGTERM) drains every ledger row before the process exits.
        await asyncio.to_thread(self.db.close, 30.0)
        await self.limiter.close()

    async def readiness_problems(self) -> list[str]:
        problems = ["shutting down: draining in-flight requests"] if self.draining else []
        problems += self.registry.not_ready_reasons()
        if (db := self.db.problem()) is not None:
            problems.append(db)
        if not await self.limiter.healthy():
            problems.append("rate-limit store (redis) unavailable")
        return problems

    # -- calls ---------------------------------------------------------------------------------

    def open_call(self, request_id: str, family: Family, route: str) -> Call:
        return Call(request_id=request_id, family=family, route=route)

    def hand_off(self, call: Call, route: str) -> Call:
        """A call that carries on ``call``'s work after its HTTP response (background work).

        ``call`` closes as usual (its concurrency slot comes back) but writes no usage row: the
        new call writes the one row, when ``close_call`` closes it as the work ends. It reserves
        and refunds its own tokens (tpm, monthly budget), and has no concurrency slot: the
        caller bounds how much background work a key may have.
        """
        taken = Call(request_id=call.request_id, family=call.family, route=route, key=call.key)
        taken.admission = None if call.key is None else Admission(call.key)
        taken.authorized, taken.model, taken.resolved = True, call.model, call.resolved
        taken.variant = call.variant
        call.handed_off = True
        return taken

    async def authorize(self, call: Call, authorization: str | None, x_api_key: str | None) -> None:
        """Authenticate the caller and admit the call under its key's limits (once per call)."""
        if call.authorized:
            return
        call.authorized = True
        if not self.auth_enabled:
            return
        secret = presented_secret(authorization, x_api_key)
        key = await self.keys.lookup(secret)
        if key is None:
            raise AuthenticationFailed("incorrect API key provided")
        call.key = key
        call.admission = Admission(key)
        await self.limiter.admit(call.admission)

    async def close_call(self, call: Call, status: int, error_kind: str | None = None) -> None:
        """The response is sent (or the client is gone): give back the limits, write the row."""
        if call.closed:
            return
        call.closed = True
        status = call.failed_status or status
        error = call.error_kind or (error_kind if status >= 400 else None)
        for observe in self.observers:
            observe(call, status, error)
        if call.slot is not None:
            self.registry.release(call.slot)
        if call.admission is not None:
            await self.limiter.finish(call.admission, call.total_tokens)
            self.keys.spent(call.admission.key.id)
        if call.handed_off:
            return  # its usage row is written by the call that took its work over
        if call.model is None and call.key is None and not self.auth_enabled:
            return  # nothing attributable: an anonymous request that never reached a model
        event = UsageEvent(
            request_id=call.request_id,
            model=call.model or "-",
            route=call.route,
            family=call.family,
            variant=call.variant,
            shadow_of=call.shadow_of,
            agreement=call.agreement,
            exact_match=call.exact_match,
            dedupe_key=call.dedupe_key,
            key_id=call.key_id,
            key_name=None if call.key is None else call.key.name,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            cached_tokens=call.cached_tokens,
            images=call.images,
            latency_ms=call.latency_ms(),
            ttft_ms=call.ttft_ms,
            status_code=status,
            error_type=error,
            stream=call.stream,
        )
        if not self.settings.ledger_durable:
            self.db.ledger.record(event)
            return
        try:
            await asyncio.wait_for(asyncio.wrap_future(self.db.ledger.record_durable(event)), DURABLE_WAIT_S)
        except TimeoutError:  # the database is slow or away: answer anyway; the row stays queued
            log.warning("usage row of %s not committed within %.0fs", call.request_id, DURABLE_WAIT_S)

    def forget_keys(self) -> None:
        """Drop cached key lookups at once (after a revoke or rotate on this replica)."""
        self.keys.forget()

    # -- capabilities --------------------------------------------------------------------------

    def _keep_alive(self, call: Call, seconds: float | None) -> None:
        """A request's keep_alive (Ollama's) sets how long its model stays loaded afterwards."""
        if seconds is not None and call.slot is not None:
            call.slot.keep_alive_s = seconds

    async def chat(self, call: Call, request: ChatRequest) -> GenerationStream:
        job = await self.plan_chat(call, request)
        return await self.start_job(call, job, request.model, shadow=request)

    async def plan_chat(self, call: Call, request: ChatRequest) -> GenerationJob:
        """Every check and decision of ``chat`` short of generating: its errors are the caller's.

        Background work plans while its request is open and starts the job later.
        """
        engine = await self.resolve(call, request.model, ChatEngine)
        self._keep_alive(call, request.keep_alive_s)
        call.stream = request.stream
        messages = self._with_system_prompt(engine, await self._text_only(call, engine, request.messages))
        tools = plan_tools(engine, request, messages)
        room = request.sampling.max_tokens or 1
        prompt = await chat_prompt(
            engine,
            tools.messages,
            tools.template_tools,
            truncate_for=room if request.truncation == "auto" else None,
        )
        return plan(
            engine,
            [prompt] * request.n,
            request.sampling,
            chat=True,
            prompt_param="messages",
            context_limit=request.num_ctx,
            family_defaults=request.sampling_defaults,
            constraint=tools.constraint,
            tool_calls=tools.calls,
        )

    async def complete(self, call: Call, request: CompletionRequest) -> GenerationStream:
        engine = await self.resolve(call, request.model, ChatEngine)
        self._keep_alive(call, request.keep_alive_s)
        call.stream = request.stream
        constraint = None
        if request.output is not None:
            if not engine.supports_constraints:
                raise Unsupported(f"the model {engine.spec.id!r} cannot constrain its output", param="format")
            constraint = output_constraint(request.output)
        if request.raw:
            if request.images:
                raise Unsupported("images need the chat template: send them without raw", param="images")
            prompts = await completion_prompts(engine, request.prompts)
        else:  # a bare prompt through the chat template (Ollama's /api/generate)
            head = [Message.of("system", request.system)] if request.system else []
            turns = [
                [*head, Message("user", (TextPart(p), *request.images))]
                for p in request.prompts
                if isinstance(p, str)
            ]
            prompts = [
                await chat_prompt(
                    engine, self._with_system_prompt(engine, await self._text_only(call, engine, t))
                )
                for t in turns
            ]
        job = plan(
            engine,
            [p for p in prompts for _ in range(request.n)],
            request.sampling,
            chat=not request.raw,
            context_limit=request.num_ctx,
            family_defaults=request.sampling_defaults,
            constraint=constraint,
        )
        return await self.start_job(call, job, request.model)

    async def start_job(
        self, call: Call, job: GenerationJob, model: str, shadow: ChatRequest | None = None
    ) -> GenerationStream:
        await self.reserve_tokens(call, job.worst_case_tokens)
        on_finish = None
        if shadow is not None and call.shadow is not None:
            alias, candidate = call.model or model, call.shadow

            def on_finish(results: list[ChoiceResult]) -> None:
                self.shadows.offer(ShadowJob(call, alias, candidate, shadow, results[0].text))

        on_end = None
        if self.settings.ledger_durable and call.stream:
            # A stream's row is committed before its last event goes out (see close_call).
            async def on_end() -> None:
                await self.close_call(call, 200)

        filters = (lambda _index: ToolCallParser(TOOL_FORMAT)) if job.tool_calls else None
        stream = GenerationStream(call, job, model=model, filters=filters, on_finish=on_finish, on_end=on_end)
        return await stream.prime()

    async def _answer_shadow(self, call: Call, request: ChatRequest) -> str:
        stream = await self.chat(call, request)
        return (await stream.collect())[0].text

    def _open_shadow_call(self, job: ShadowJob) -> Call:
        live = job.live
        call = self.open_call(f"{live.request_id[:48]}-shadow", live.family, f"shadow {live.route}"[:128])
        call.authorized, call.shadow_of = True, live.request_id
        return call

    async def count_tokens(self, call: Call, request: ChatRequest) -> int:
        engine = await self.resolve(call, request.model, ChatEngine)
        messages = self._with_system_prompt(engine, await self._text_only(call, engine, request.messages))
        tools = plan_tools(engine, request, messages)  # the prompt exactly as chat would render it
        return len(await chat_prompt(engine, tools.messages, tools.template_tools))

    async def tokenize(
        self, call: Call, model: str, *, text: str | None = None, messages: Sequence[Message] | None = None
    ) -> tuple[list[int], int]:
        """Token ids of a prompt or of rendered chat messages, and the model's context length."""
        engine = await self.resolve(call, model, ChatEngine)
        if messages is not None:
            tokens = await chat_prompt(
                engine, self._with_system_prompt(engine, await self._text_only(call, engine, messages))
            )
        else:
            tokens = (await completion_prompts(engine, [text or ""]))[0]
        return tokens, engine.context_length

    async def embed(self, call: Call, request: EmbedRequest) -> EmbedResult:
        engine = await self.resolve(call, request.model, EmbeddingEngine)
        self._keep_alive(call, request.keep_alive_s)
        texts = list(request.texts)
        if not texts:
            raise InvalidRequest("input must not be empty", param="input")
        result = await engine.embed(texts, truncate=request.truncate)
        dims = int(result.vectors.shape[1])
        if request.dimensions not in (None, dims):
            raise InvalidRequest(f"this model only produces {dims} dimensions", param="dimensions")
        call.prompt_tokens = sum(result.token_counts)
        return EmbedResult(engine.spec.id, result.vectors, result.token_counts)

    async def classify(self, call: Call, request: ClassifyRequest) -> ClassifyResult:
        name = request.model or self._default_model(ModelKind.IMAGE_CLASSIFICATION)
        engine = await self.resolve(call, name, ClassifierEngine)
        call.images = 1
        image = await asyncio.to_thread(decode_image, request.image, self.settings.max_image_pixels)
        predictions = await engine.classify(image, request.top_k)
        return ClassifyResult(engine.spec.id, predictions)

    # -- routing -------------------------------------------------------------------------------

    async def resolve(self, call: Call, name: str, cls: type[E]) -> E:
        """Route a model name (a rollout route, a model id or an alias) to one engine.

        A route picks its variant here, once, so the whole request is served by it. The key's
        scope allows the public name it asked for (a route's alias) or the model's own id. The
        engine is held (in flight) until the call closes, so unloading waits for it.
        """
        call.model = name[:128]  # recorded as asked until it resolves
        route = self.cluster.routes.get(name)
        model_id = route.pick(_key_ident(call), self._rng) if route is not None else name
        spec = self.registry.spec(model_id)
        public = route.alias if route is not None else spec.id
        if call.key is not None and not (call.key.allows_model(public) or call.key.allows_model(spec.id)):
            raise PermissionDenied(f"this API key may not use the model {public!r}", param="model")
        if call.slot is not None:  # a second resolve in one call (count_tokens, then chat)
            self.registry.release(call.slot)
            call.slot = None
        slot, engine = await self.registry.acquire(spec.id, cls)
        call.slot = slot
        call.model, call.variant, call.resolved = public, spec.id, True
        call.shadow = route.shadow if route is not None and route.strategy == "shadow" else None
        return engine

    def _default_model(self, kind: ModelKind) -> str:
        spec = self.registry.first_of_kind(kind)
        if spec is None:
            raise ModelNotFound(f"no {kind.value} model is configured", param="model")
        return spec.id

    @staticmethod
    def _with_system_prompt(engine: ChatEngine, messages: Sequence[Message]) -> Sequence[Message]:
        """The model's configured system prompt, for a conversation that brings none."""
        prompt = engine.spec.system_prompt
        if prompt is None or any(m.role == "system" for m in messages):
            return messages
        return [Message.of("system", prompt), *messages]

    async def _text_only(
        self, call: Call, engine: ChatEngine, messages: Sequence[Message]
    ) -> Sequence[Message]:
        """Messages a text model can read: images become its image model's labels, or a 400."""
        first = next((i for i, m in enumerate(messages) if m.images), None)
        if first is None:
            return messages
        if engine.spec.image_model is None:
            raise InvalidRequest(
                "this model does not accept images; use an image model or /v1/classify",
                param=f"messages[{first}].content",
                code="unsupported_content",
            )
        slot, classifier = await self.registry.acquire(engine.spec.image_model, ClassifierEngine)
        try:
            described, count = await describe_images(messages, classifier, self.settings)
        finally:
            self.registry.release(slot)
        call.images += count
        return described

    async def reserve_tokens(self, call: Call, tokens: int) -> None:
        if call.admission is not None:
            await self.limiter.reserve_tokens(call.admission, tokens)


def _key_ident(call: Call) -> str | None:
    """What keeps an A/B bucket sticky: the key (its id and creation time, unique across databases)."""
    key = call.key
    return None if key is None else f"{key.id}-{key.created_at.timestamp():.3f}"
