"""Store errors, as subclasses of :mod:`hearth.errors` so the API renders them directly.

    InvalidRequest (400)
    ├── InvalidKeyName       reason=invalid_key_name   (also a ValueError)
    ├── KeyNameTaken         reason=key_name_taken
    └── KeyRevoked           reason=key_revoked
    NotFound (404)
    └── KeyNotFound          reason=key_not_found
    Overloaded (503)
    └── StoreUnavailable     reason=database_unavailable (+ Retry-After)

SQLAlchemy's connection-level errors become :class:`StoreUnavailable` in :func:`db_errors`;
anything else from the database is a bug and stays a 500.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

from hearth.errors import InvalidRequest, NotFound, Overloaded


class InvalidKeyName(InvalidRequest, ValueError):
    reason = "invalid_key_name"

    def __init__(self, name: str) -> None:
        shown = name if len(name) <= 80 else name[:77] + "..."
        super().__init__(
            f"invalid key name {shown!r}: use 1 to 64 letters, digits, '.', '_' or '-'", param="name"
        )


class KeyNameTaken(InvalidRequest):
    reason = "key_name_taken"

    def __init__(self, name: str) -> None:
        super().__init__(f"a key named {name!r} already exists", param="name")


class KeyRevoked(InvalidRequest):
    reason = "key_revoked"

    def __init__(self, name: str) -> None:
        super().__init__(f"key {name!r} is revoked; create a new key instead", param="name")


class KeyNotFound(NotFound):
    reason = "key_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no key named {name!r}", param="name")


class StoreUnavailable(Overloaded):
    reason = "database_unavailable"


# Errors that mean "the database can't be reached right now", not "this query is wrong".
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # pool exhausted
)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, TRANSIENT_ERRORS)


@contextlib.contextmanager
def db_errors() -> Iterator[None]:
    """Map an unreachable database to a 503 the client may retry."""
    try:
        yield
    except sa_exc.SQLAlchemyError as exc:
        if is_transient(exc):
            raise StoreUnavailable("the database is unavailable", retry_after=1.0) from exc
        raise
