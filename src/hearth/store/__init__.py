"""Storage: SQLAlchemy tables, Alembic migrations, API keys, the usage ledger and its queries.

Synchronous by design: the gateway runs these calls in worker threads, and the ledger writer
owns a background thread, so no request ever waits on a database write.
"""

from __future__ import annotations

from hearth.store.connection import create_db_engine, is_postgresql, is_sqlite, session_factory
from hearth.store.errors import (
    InvalidKeyName,
    KeyNameTaken,
    KeyNotFound,
    KeyRevoked,
    StoreUnavailable,
)
from hearth.store.keys import ApiKeyView, KeyStore
from hearth.store.ledger import LedgerWriter
from hearth.store.usage import (
    DailyUsage,
    ModelUsage,
    UsageSummary,
    month_start,
    tokens_used_since,
    usage_summary,
)
from hearth.store.usage_event import UsageEvent

__all__ = [
    "ApiKeyView",
    "DailyUsage",
    "InvalidKeyName",
    "KeyNameTaken",
    "KeyNotFound",
    "KeyRevoked",
    "KeyStore",
    "LedgerWriter",
    "ModelUsage",
    "StoreUnavailable",
    "UsageEvent",
    "UsageSummary",
    "create_db_engine",
    "is_postgresql",
    "is_sqlite",
    "month_start",
    "session_factory",
    "tokens_used_since",
    "usage_summary",
]
