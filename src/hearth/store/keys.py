"""API keys: create, list, revoke, rotate, authenticate.

A secret is ``"hk-" + secrets.token_urlsafe(32)`` (256 random bits). Only its sha256 and a short
display prefix are stored, so a database leak reveals no usable key, and a plain hash is enough
(no salt or slow KDF: the input is random, not a password). The secret is returned exactly once,
by :meth:`KeyStore.create` / :meth:`KeyStore.rotate`, and never logged.

Errors (see :mod:`hearth.store.errors`, all :mod:`hearth.errors` subclasses):
``InvalidKeyName`` / ``KeyNameTaken`` / ``KeyRevoked`` render as 400, ``KeyNotFound`` as 404,
``StoreUnavailable`` (database down) as 503.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from hearth.errors import InvalidRequest
from hearth.store.errors import (
    InvalidKeyName,
    KeyNameTaken,
    KeyNotFound,
    KeyRevoked,
    db_errors,
)
from hearth.store.tables import ApiKey, utcnow

# A key's default priority class under overload, most urgent first (gateway/priority.py).
PRIORITY_CLASSES = ("interactive", "standard", "batch")

log = logging.getLogger(__name__)

# The prefix every key shows, not a secret (bandit B105).
SECRET_PREFIX = "hk-"  # nosec B105
DISPLAY_PREFIX_LEN = 10
# Longest secret authenticate() will hash; anything longer is not ours.
MAX_SECRET_LEN = 256
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# last_used_at is informational: write it at most this often per key and process.
TOUCH_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    """A key as callers see it: limits and timestamps, never the hash."""

    id: int
    name: str
    prefix: str
    models: tuple[str, ...] | None
    rpm: int | None
    tpm: int | None
    max_concurrent: int | None
    monthly_tokens: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None
    priority: str = "interactive"
    weight: float = 1.0
    batch_queued_tokens: int | None = None

    @classmethod
    def from_row(cls, row: ApiKey) -> ApiKeyView:
        return cls(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            models=tuple(row.models) if row.models is not None else None,
            rpm=row.rpm,
            tpm=row.tpm,
            max_concurrent=row.max_concurrent,
            monthly_tokens=row.monthly_tokens,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            priority=row.priority or "interactive",
            weight=row.weight if row.weight is not None else 1.0,
            batch_queued_tokens=row.batch_queued_tokens,
        )

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    def active(self, now: datetime | None = None) -> bool:
        return not self.revoked and not self.expired(now)

    def status(self, now: datetime | None = None) -> str:
        """``"active"``, ``"revoked"`` or ``"expired"``."""
        if self.revoked:
            return "revoked"
        return "expired" if self.expired(now) else "active"

    def allows_model(self, model_id: str) -> bool:
        return self.models is None or model_id in self.models

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the admin API and ``hearth keys list``."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "status": self.status(),
            "models": list(self.models) if self.models is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "max_concurrent": self.max_concurrent,
            "monthly_tokens": self.monthly_tokens,
            "priority": self.priority,
            "weight": self.weight,
            "batch_queued_tokens": self.batch_queued_tokens,
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at),
        }


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def validate_name(name: str) -> str:
    if not isinstance(name, str) or NAME_RE.fullmatch(name) is None:
        raise InvalidKeyName(str(name))
    return name


def _positive(value: int | None, param: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"{param} must be a positive integer or omitted", param=param)
    return value


def _clean_models(models: list[str] | tuple[str, ...] | None) -> list[str] | None:
    if models is None:
        return None
    cleaned = list(dict.fromkeys(m.strip() for m in models if m.strip()))
    if not cleaned:
        raise InvalidRequest("models must name at least one model id; omit it to allow all", param="models")
    if any(len(m) > 128 for m in cleaned):
        raise InvalidRequest("model ids are at most 128 characters", param="models")
    return cleaned


class KeyStore:
    """API keys in the database. Synchronous: call it from a worker thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._touched: dict[int, float] = {}
        self._touch_lock = threading.Lock()

    def create(
        self,
        name: str,
        *,
        models: builtins.list[str] | tuple[str, ...] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        max_concurrent: int | None = None,
        monthly_tokens: int | None = None,
        expires_days: float | None = None,
        priority: str = "interactive",
        weight: float = 1.0,
        batch_queued_tokens: int | None = None,
    ) -> tuple[ApiKeyView, str]:
        """Create a key; returns its view and the secret, which is shown once and never stored."""
        validate_name(name)
        if expires_days is not None and (isinstance(expires_days, bool) or expires_days <= 0):
            raise InvalidRequest("expires_days must be positive or omitted", param="expires_days")
        if priority not in PRIORITY_CLASSES:
            raise InvalidRequest(f"priority must be one of: {', '.join(PRIORITY_CLASSES)}", param="priority")
        if isinstance(weight, bool) or not 0 < weight <= 1000:
            raise InvalidRequest("weight must be a number above 0 and at most 1000", param="weight")
        now = utcnow()
        secret = new_secret()
        row = ApiKey(
            name=name,
            prefix=secret[:DISPLAY_PREFIX_LEN],
            secret_hash=hash_secret(secret),
            models=_clean_models(models),
            rpm=_positive(rpm, "rpm"),
            tpm=_positive(tpm, "tpm"),
            max_concurrent=_positive(max_concurrent, "max_concurrent"),
            monthly_tokens=_positive(monthly_tokens, "monthly_tokens"),
            priority=priority,
            weight=float(weight),
            batch_queued_tokens=_positive(batch_queued_tokens, "batch_queued_tokens"),
            expires_at=now + timedelta(days=expires_days) if expires_days is not None else None,
            created_at=now,
        )
        with db_errors(), self._sessions() as session:
            if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
                raise KeyNameTaken(name)
            session.add(row)
            try:
                session.commit()
            except IntegrityError as exc:  # lost a race with another create of the same name
                session.rollback()
                raise KeyNameTaken(name) from exc
            view = ApiKeyView.from_row(row)
        log.info("created API key %r (%s...)", name, view.prefix)
        return view, secret

    def list(self, *, include_revoked: bool = True) -> builtins.list[ApiKeyView]:
        stmt = select(ApiKey).order_by(ApiKey.name)
        if not include_revoked:
            stmt = stmt.where(ApiKey.revoked_at.is_(None))
        with db_errors(), self._sessions() as session:
            return [ApiKeyView.from_row(row) for row in session.scalars(stmt)]

    def get(self, name: str) -> ApiKeyView:
        validate_name(name)
        with db_errors(), self._sessions() as session:
            return ApiKeyView.from_row(self._row(session, name))

    def get_by_id(self, key_id: int) -> ApiKeyView | None:
        with db_errors(), self._sessions() as session:
            row = session.get(ApiKey, key_id)
            return ApiKeyView.from_row(row) if row is not None else None

    def revoke(self, name: str) -> ApiKeyView:
        """Revoke a key; its secret stops working at once. Revoking twice keeps the first time."""
        validate_name(name)
        with db_errors(), self._sessions() as session:
            row = self._row(session, name)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                session.commit()
                log.info("revoked API key %r", name)
            return ApiKeyView.from_row(row)

    def rotate(self, name: str) -> str:
        """Give the key a new secret (same limits) and return it; the old secret stops working."""
        validate_name(name)
        secret = new_secret()
        with db_errors(), self._sessions() as session:
            row = self._row(session, name)
            if row.revoked_at is not None:
                raise KeyRevoked(name)
            row.secret_hash = hash_secret(secret)
            row.prefix = secret[:DISPLAY_PREFIX_LEN]
            session.commit()
        log.info("rotated API key %r", name)
        return secret

    def authenticate(self, secret: str) -> ApiKeyView | None:
        """The active key whose secret this is, or ``None`` (unknown, revoked or expired)."""
        if (
            not isinstance(secret, str)
            or not secret.startswith(SECRET_PREFIX)
            or len(secret) > MAX_SECRET_LEN
        ):
            return None
        digest = hash_secret(secret)
        with db_errors(), self._sessions() as session:
            row = session.scalars(select(ApiKey).where(ApiKey.secret_hash == digest)).first()
            # The lookup is by hash, so timing leaks nothing about the secret; the constant-time
            # comparison guards against a collation/case-folding backend matching a near miss.
            if row is None or not hmac.compare_digest(row.secret_hash, digest):
                return None
            view = ApiKeyView.from_row(row)
        return view if view.active() else None

    def touch(self, key_id: int, *, now: datetime | None = None) -> None:
        """Record that a key was used. Throttled and best-effort: it never fails a request."""
        clock = time.monotonic()
        with self._touch_lock:
            last = self._touched.get(key_id)
            if last is not None and clock - last < TOUCH_INTERVAL_S:
                return
            self._touched[key_id] = clock
        now = now or utcnow()
        cutoff = now - timedelta(seconds=TOUCH_INTERVAL_S)
        stmt = (
            update(ApiKey)
            .where(ApiKey.id == key_id)
            # Other replicas touch the same key: skip the write if one did so recently.
            .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < cutoff))
            .values(last_used_at=now)
        )
        try:
            with self._sessions() as session:
                session.execute(stmt)
                session.commit()
        except SQLAlchemyError as exc:
            log.warning("could not update last_used_at of key %s: %s", key_id, type(exc).__name__)
            with self._touch_lock:
                self._touched.pop(key_id, None)

    @staticmethod
    def _row(session: Session, name: str) -> ApiKey:
        row = session.scalars(select(ApiKey).where(ApiKey.name == name)).first()
        if row is None:
            raise KeyNotFound(name)
        return row


__all__ = [
    "ApiKeyView",
    "InvalidKeyName",
    "KeyNameTaken",
    "KeyNotFound",
    "KeyRevoked",
    "KeyStore",
    "hash_secret",
    "new_secret",
    "validate_name",
]
