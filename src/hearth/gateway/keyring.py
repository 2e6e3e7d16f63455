"""Who a secret belongs to, and what its key has used this month, with short caches.

Lookups are cached for ``AUTH_CACHE_TTL_S``: a revocation on this replica applies at once
(``forget``), on the others within that. Monthly budgets count the ledger plus the rows still
queued in this replica's ledger, so a burst cannot overspend before its rows are written.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from hearth.errors import NotReady
from hearth.store.database import Database
from hearth.store.keys import ApiKeyView

AUTH_CACHE_TTL_S = 2.0
BUDGET_CACHE_TTL_S = 1.0


@dataclass
class _Cached:
    key: ApiKeyView | None
    until: float


class KeyRing:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._auth: dict[str, _Cached] = {}
        self._budgets: dict[int, tuple[float, int]] = {}

    async def lookup(self, secret: str) -> ApiKeyView | None:
        """The active key this secret belongs to, or None; 503 while the database is away."""
        now = time.monotonic()
        cached = self._auth.get(secret)
        if cached is not None and cached.until > now:
            return cached.key
        if not self._db.ready:
            raise NotReady("the key database is unavailable; try again shortly", retry_after=2)
        try:
            key = await asyncio.to_thread(self._db.keys.authenticate, secret)
        except Exception as exc:
            raise NotReady("the key database is unavailable; try again shortly", retry_after=2) from exc
        if len(self._auth) > 10_000:
            self._auth.clear()
        self._auth[secret] = _Cached(key, now + AUTH_CACHE_TTL_S)
        if key is not None:
            self._touch(key.id)
        return key

    def forget(self) -> None:
        """Drop cached lookups at once (after a revoke or rotate on this replica)."""
        self._auth.clear()

    def spent(self, key_id: int) -> None:
        """A call of this key ended: its month total changed."""
        self._budgets.pop(key_id, None)

    async def month_usage(self, key_id: int) -> int:
        now = time.monotonic()
        cached = self._budgets.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        used = await asyncio.to_thread(self._db.month_tokens, key_id) + self._db.ledger.pending_tokens(key_id)
        self._budgets[key_id] = (now + BUDGET_CACHE_TTL_S, used)
        return used

    def _touch(self, key_id: int) -> None:
        """Record the key as used (``last_used_at``) off the request path; the key store writes
        it at most once a minute (``KeyStore.touch``)."""
        task = asyncio.get_running_loop().run_in_executor(None, self._db.keys.touch, key_id)
        task.add_done_callback(lambda f: f.exception())  # a failed touch is not an error
