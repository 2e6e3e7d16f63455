"""The admin key of the test apps, and request headers for keys."""

from __future__ import annotations

from collections.abc import Callable

ADMIN = "admin-secret-for-tests"
MakeKey = Callable[..., str]  # the ``make_key`` fixture: a name and limits in, a secret out


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
