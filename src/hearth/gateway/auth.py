"""Reading API keys from requests, and the admin secret (``HEARTH_ADMIN_KEY`` or a bootstrap file).

Without ``HEARTH_ADMIN_KEY`` the first start writes a secret to the data dir, and its sha256 goes
into the database. Replicas sharing that database accept the secret whose hash is stored there,
whichever replica made it; the others' bootstrap files are removed, so that none of them lies.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from hearth.errors import AuthenticationFailed, NotReady
from hearth.store.admin import claim_admin_secret
from hearth.store.keys import MAX_SECRET_LEN, hash_secret

if TYPE_CHECKING:
    from hearth.store.database import Database

log = logging.getLogger("hearth.auth")

ADMIN_KEY_FILE = "admin.key"
# What the 401 of every family says a caller without a working key should do.
GET_A_KEY = "to get a key, run `hearth keys create NAME` where the server runs, or ask the server's operator"


def presented_secret(authorization: str | None, x_api_key: str | None) -> str:
    """The secret a client sent as ``Authorization: Bearer`` (OpenAI) or ``x-api-key`` (Anthropic)."""
    secret = None
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationFailed("malformed Authorization header: expected 'Bearer <key>'")
        secret = value.strip()
    elif x_api_key:
        secret = x_api_key.strip()
    if not secret:
        raise AuthenticationFailed(
            "you didn't provide an API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'; "
            + GET_A_KEY
        )
    if len(secret) > MAX_SECRET_LEN or not secret.isascii() or not secret.isprintable():
        raise AuthenticationFailed(f"the API key provided is malformed; {GET_A_KEY}")
    return secret


def load_admin_secret(data_dir: Path, configured: str | None) -> str:
    """``HEARTH_ADMIN_KEY`` if set; otherwise a secret made on first start, stored with mode 600."""
    return configured or _bootstrap_secret(data_dir)[0]


def _bootstrap_secret(data_dir: Path) -> tuple[str, bool]:
    """The data dir's bootstrap secret, and whether this call created it."""
    path = data_dir / ADMIN_KEY_FILE
    if path.exists():
        return path.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = "hk-admin-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret, True


class AdminSecret:
    """Which admin secret this replica accepts: the configured one, or the database's bootstrap one."""

    def __init__(self, data_dir: Path, configured: str | None, db: Database) -> None:
        self._db = db
        self._configured = bool(configured)
        self._path = data_dir / ADMIN_KEY_FILE
        if configured:
            self._hash, self._created, self._agreed = hash_secret(configured), False, True
        else:
            secret, self._created = _bootstrap_secret(data_dir)
            self._hash, self._agreed = hash_secret(secret), False
        self._lock = asyncio.Lock()

    @property
    def where_to_find(self) -> str:
        """Where an operator finds the admin key (never the key itself)."""
        if self._configured:
            return "the admin key is the server's HEARTH_ADMIN_KEY"
        return f"the admin key is in {ADMIN_KEY_FILE} in the server's data directory ({self._path.parent})"

    async def agree(self) -> None:
        """Adopt the database's bootstrap secret (storing ours if it has none); once per process."""
        db = self._db
        if self._agreed:
            return
        async with self._lock:
            if self._agreed:
                return
            if not db.ready:
                raise NotReady(
                    "the database is not ready, so the admin key cannot be checked yet", retry_after=2
                )
            stored = await asyncio.to_thread(claim_admin_secret, db.sessions, self._hash)
            if stored != self._hash:
                # Another replica's secret came first: ours would not work anywhere, so drop it.
                log.warning(
                    "the admin key is the bootstrap secret another replica made (%s on that machine)",
                    ADMIN_KEY_FILE,
                )
                if self._created:
                    self._path.unlink(missing_ok=True)
                self._hash = stored
            self._agreed = True

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(hash_secret(presented).encode(), self._hash.encode())
