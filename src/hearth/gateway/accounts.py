"""Keys, usage and budgets as services: what ``/v1/usage``, ``/admin`` and the CLI ask for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hearth.errors import InvalidRequest
from hearth.gateway.call import Call
from hearth.store.database import Database
from hearth.store.keys import ApiKeyView
from hearth.store.usage import month_start


class Accounts:
    def __init__(self, db: Database, forget_keys: Callable[[], None]) -> None:
        self._db = db
        self._forget_keys = forget_keys

    async def my_usage(self, call: Call, since: datetime | None) -> dict[str, Any]:
        """The caller's own usage, with its limits and what remains of its monthly budget."""
        key = call.identity.key
        if key is None:
            raise InvalidRequest("usage is per API key, and this server runs without keys (--no-auth)")

        def query() -> dict[str, Any]:
            summary = self._db.usage(key.id, since).to_dict()
            month = self._db.usage(key.id, month_start())
            summary["key"] = key.to_dict()
            remaining = (
                None if key.monthly_tokens is None else max(0, key.monthly_tokens - month.total_tokens)
            )
            summary["budget"] = {
                "monthly_tokens": key.monthly_tokens,
                "used_this_month": month.total_tokens,
                "remaining": remaining,
            }
            return summary

        return await asyncio.to_thread(query)

    async def my_recent(self, call: Call, limit: int) -> dict[str, Any]:
        """The caller's latest requests, one by one, and today's activity hour by hour."""
        key = call.identity.key
        if key is None:
            raise InvalidRequest("usage is per API key, and this server runs without keys (--no-auth)")
        return await asyncio.to_thread(self._db.recent, key.id, limit)

    async def usage(self, key_name: str | None, since: datetime | None) -> dict[str, Any]:
        """Everyone's usage, or one key's (admin)."""

        def query() -> dict[str, Any]:
            key_id = self._db.keys.get(key_name).id if key_name else None
            return self._db.usage(key_id, since).to_dict()

        return await asyncio.to_thread(query)

    async def list_keys(self) -> list[ApiKeyView]:
        return await asyncio.to_thread(self._db.keys.list)

    async def create_key(self, **fields: Any) -> tuple[ApiKeyView, str]:
        return await asyncio.to_thread(lambda: self._db.keys.create(**fields))

    async def get_key(self, name: str) -> ApiKeyView:
        return await asyncio.to_thread(self._db.keys.get, name)

    async def revoke_key(self, name: str) -> ApiKeyView:
        view = await asyncio.to_thread(self._db.keys.revoke, name)
        self._forget_keys()
        return view

    async def rotate_key(self, name: str) -> tuple[ApiKeyView, str]:
        secret = await asyncio.to_thread(self._db.keys.rotate, name)
        self._forget_keys()
        return await self.get_key(name), secret
