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
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hearth.errors import AuthenticationFailed, NotReady, Overloaded
from hearth.store.admin import claim_admin_secret, rotate_admin_secret, stored_admin_hash
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
    """Which admin secret this replica accepts: the one stored in the database (the configured
    or bootstrap secret of whichever replica came first, or a rotated one), read again every
    ``REFRESH_S`` so a rotation on any replica reaches this one without a restart."""

    REFRESH_S = 2.0
    MISS_REFRESH_S = 0.25  # a key that does not match reads the database again, this often at most

    def __init__(self, data_dir: Path, configured: str | None, db: Database) -> None:
        self._db = db
        self._configured = bool(configured)
        self._path = data_dir / ADMIN_KEY_FILE
        if configured:
            self._hash, self._created = hash_secret(configured), False
        else:
            secret, self._created = _bootstrap_secret(data_dir)
            self._hash = hash_secret(secret)
        self._agreed = False
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def where_to_find(self) -> str:
        """Where an operator finds the admin key (never the key itself)."""
        if self._configured:
            return "the admin key is the server's HEARTH_ADMIN_KEY, or the one it was rotated to"
        return (
            f"the admin key is in {ADMIN_KEY_FILE} in the server's data directory ({self._path.parent}), "
            "or the one it was rotated to"
        )

    async def check(self, presented: str) -> bool:
        """Whether ``presented`` is the admin secret. A miss reads the database again first (a
        rotation on another replica works here at once), at most every MISS_REFRESH_S."""
        await self.agree()
        if self.matches(presented):
            return True
        await self.agree(self.MISS_REFRESH_S)
        return self.matches(presented)

    async def agree(self, max_age_s: float | None = None) -> None:
        """Adopt the database's secret (storing ours if it has none), and read it again once it
        is ``max_age_s`` old (REFRESH_S). A configured key works while the database is away."""
        db = self._db
        max_age = self.REFRESH_S if max_age_s is None else max_age_s
        if self._agreed and time.monotonic() - self._read_at < max_age:
            return
        async with self._lock:
            if self._agreed and time.monotonic() - self._read_at < max_age:
                return
            if not db.ready:
                if self._configured or self._agreed:
                    return  # the last secret known, until the database is back
                raise NotReady(
                    "the database is not ready, so the admin key cannot be checked yet", retry_after=2
                )
            if self._agreed:
                stored = await asyncio.to_thread(stored_admin_hash, db.sessions)
            else:
                stored = await asyncio.to_thread(
                    claim_admin_secret, db.sessions, self._hash, self._configured
                )
            if stored is not None and stored != self._hash:
                if not self._agreed and not self._configured:
                    # Another replica's secret came first: ours would not work anywhere, so drop it.
                    log.warning(
                        "the admin key is the bootstrap secret another replica made (%s on that machine)",
                        ADMIN_KEY_FILE,
                    )
                    if self._created:
                        self._path.unlink(missing_ok=True)
                elif self._agreed:
                    log.warning("the admin key was rotated; the previous one no longer works here")
                self._hash = stored
            self._agreed, self._read_at = True, time.monotonic()

    async def rotate(self) -> str:
        """A new admin secret for every replica on this database: returned once, stored hashed.
        The bootstrap file, if this replica made one, is removed (it would lie)."""
        await self.agree()
        if not self._db.ready:
            raise NotReady("the database is not ready, so the admin key cannot be rotated now", retry_after=2)
        secret = "hk-admin-" + secrets.token_urlsafe(32)
        new_hash = hash_secret(secret)
        async with self._lock:
            if not await asyncio.to_thread(rotate_admin_secret, self._db.sessions, self._hash, new_hash):
                raise Overloaded(
                    "the admin key was rotated by another request at the same time; try again", retry_after=1
                )
            self._hash, self._read_at = new_hash, time.monotonic()
        self._path.unlink(missing_ok=True)
        log.warning("the admin key was rotated")
        return secret

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(hash_secret(presented).encode(), self._hash.encode())
