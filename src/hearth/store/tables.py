"""SQLAlchemy tables: API keys, the usage ledger and stored responses.

Timestamps are always timezone-aware UTC in Python. PostgreSQL stores ``timestamptz``; SQLite
stores naive UTC text (fixed format, so it sorts and compares correctly).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite's DATETIME drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # Naive input is taken to be UTC already.
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an "INTEGER PRIMARY KEY" (the rowid alias), not BIGINT.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # Enough of the secret to recognise it in a list ("hk-abc1234"), far too little to use it.
    prefix: Mapped[str] = mapped_column(String(16))
    # sha256 hex of the whole secret; secrets are 256-bit random, so no salt/KDF is needed.
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Allowed model ids; NULL means every model.
    models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # Limits; NULL means unlimited.
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
    monthly_tokens: Mapped[int | None] = mapped_column(BigInteger)
    # Fair admission under overload (engines/fair_queue.py): the key's default priority class
    # (interactive, standard, batch) and its weight among keys of one class.
    priority: Mapped[str] = mapped_column(String(16), default="interactive", server_default="interactive")
    weight: Mapped[float] = mapped_column(Float, default=1.0, server_default="1")
    # The most input tokens the key may have queued in unfinished batch jobs; NULL: no limit.
    batch_queued_tokens: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()


class ModelRoute(Base):
    """A public model id that routes to versioned variants (canary, A/B, blue-green, shadow)."""

    __tablename__ = "model_routes"

    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(16))
    # [{"model": id, "weight": 0-100}, ...]
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    shadow: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(BigInteger)  # the cluster version that last changed it
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RuntimeModel(Base):
    """A model loaded through ``POST /admin/models``: every replica loads it too."""

    __tablename__ = "runtime_models"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClusterState(Base):
    """One row whose version grows on every route or run-time model change: what replicas poll."""

    __tablename__ = "cluster_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class AdminSecretHash(Base):
    """The admin secret's sha256 (one row): every replica on this database accepts it."""

    __tablename__ = "admin_secret"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The configured HEARTH_ADMIN_KEY's sha256 this secret was rotated from (null: a bootstrap one).
    seeded_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rotated_at: Mapped[datetime | None] = mapped_column(nullable=True)


class UsageRecord(Base):
    """One row per request, written in batches by :class:`hearth.store.ledger.LedgerWriter`."""

    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64))
    # SET NULL keeps the history if a key row is ever deleted; key_name keeps it readable.
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    key_name: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    route: Mapped[str] = mapped_column(String(128))
    # Which API family served it (openai, anthropic, ollama, oip, hearth) and, for a rollout
    # route, which variant's model; ``model`` is always the id that really served it.
    family: Mapped[str] = mapped_column(String(16), default="openai", server_default="openai")
    variant: Mapped[str | None] = mapped_column(String(128))
    # A shadow call's row: the request it mirrored, and how far its answer agreed with the live one.
    shadow_of: Mapped[str | None] = mapped_column(String(64))
    agreement: Mapped[float | None] = mapped_column(Float)
    exact_match: Mapped[bool | None] = mapped_column(Boolean)
    # The load balancer's id for one client request: a retry on another replica cannot record it twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    images: Mapped[int] = mapped_column(Integer, default=0)
    audio_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    characters: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A batch job's line: the batch and the line's custom_id.
    batch_id: Mapped[str | None] = mapped_column(String(64))
    custom_id: Mapped[str | None] = mapped_column(String(512))
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    status_code: Mapped[int] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(64))
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        # Per-key summaries and monthly budgets: an equality on key_id, a range on created_at.
        # total_tokens rides along so the budget sum is an index-only scan.
        Index("ix_usage_records_key_created", "key_id", "created_at", "total_tokens"),
        # Whole-server summaries over a time window.
        Index("ix_usage_records_created_at", "created_at"),
        Index("ix_usage_records_model", "model"),
        Index("ix_usage_records_family", "family"),
    )


class StoredResponse(Base):
    """A response of the Responses API (``/v1/responses``): its output, usage and status.

    ``key_id`` is the owner (NULL on a server without keys, where responses are shared). A
    background response's runner refreshes ``heartbeat_at``; a replica that finds one gone stale
    marks it failed (the server running it stopped).
    """

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    background: Mapped[bool] = mapped_column(Boolean, default=False)
    # No foreign key: deleting an earlier turn must not delete (or block) the later ones.
    previous_response_id: Mapped[str | None] = mapped_column(String(64))
    instructions: Mapped[str | None] = mapped_column(Text)
    # The request's parameters as the API family echoes them back (temperature, tools, ...).
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    output: Mapped[list[Any]] = mapped_column(JSON)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    incomplete_reason: Mapped[str | None] = mapped_column(String(32))
    worker: Mapped[str | None] = mapped_column(String(64))  # the replica running it (background)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        # Purge by age, and the sweep for abandoned background responses.
        Index("ix_responses_created_at", "created_at"),
        Index("ix_responses_status_heartbeat", "status", "heartbeat_at"),
    )


class StoredInputItem(Base):
    """One input item of a response, in order: as listed to clients, and as the model saw it."""

    __tablename__ = "response_input_items"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    response_id: Mapped[str] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[str] = mapped_column(String(64))
    item: Mapped[dict[str, Any]] = mapped_column(JSON)  # the family's item shape
    message: Mapped[dict[str, Any]] = mapped_column(JSON)  # the neutral message

    __table_args__ = (
        Index("ix_response_input_items_response_position", "response_id", "position", unique=True),
    )


class StoredFile(Base):
    """A file uploaded through OpenAI's Files API (``/v1/files``), kept in the database so that
    every replica reads it. ``key_id`` is the owner (NULL on a server without keys)."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_files_key_created", "key_id", "created_at"),)


class StoredBatch(Base):
    """A batch job (OpenAI's Batch API): its input file, where it stands, and its outputs.

    ``worker`` is the replica running it, which refreshes ``heartbeat_at``; a replica that finds
    the heartbeat stale takes the batch over and goes on from the first line not yet done.
    """

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(16))
    batch_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    status: Mapped[str] = mapped_column(String(16))
    errors: Mapped[list[Any] | None] = mapped_column(JSON)
    output_file_id: Mapped[str | None] = mapped_column(String(64))
    error_file_id: Mapped[str | None] = mapped_column(String(64))
    total: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    # Its lines' estimated input tokens, counted against its key's batch_queued_tokens until it ends.
    queued_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    in_progress_at: Mapped[datetime | None] = mapped_column()
    finalizing_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    failed_at: Mapped[datetime | None] = mapped_column()
    expired_at: Mapped[datetime | None] = mapped_column()
    cancelling_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    worker: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        Index("ix_batches_key_created", "key_id", "created_at"),
        Index("ix_batches_status_heartbeat", "status", "heartbeat_at"),
    )


class StoredBatchLine(Base):
    """One finished line of a batch: its output (or error) line as the output files carry it."""

    __tablename__ = "batch_lines"

    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    custom_id: Mapped[str] = mapped_column(String(512))
    ok: Mapped[bool] = mapped_column(Boolean)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
