"""Store fixtures: every storage test runs against SQLite (a temp file) and PostgreSQL.

PostgreSQL tests use schemas private to this test run (``search_path`` set through the URL's
``options``), so parallel runs and other users of the ``test`` database don't interfere; the
schemas are dropped at the end. Without a reachable server they skip, unless
``HEARTH_REQUIRE_SERVICES=1``, where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from hearth.store.connection import create_db_engine, session_factory
from hearth.store.keys import KeyStore
from hearth.store.migrate import upgrade

PG_URL = os.environ.get("HEARTH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.services),
]


def schema_url(base: str, schema: str) -> str:
    """``base`` with every connection's search_path set to ``schema``."""
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    engine = create_engine(PG_URL, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = f"PostgreSQL unreachable at {make_url(PG_URL)!r}: {type(exc).__name__}"
        if os.environ.get("HEARTH_REQUIRE_SERVICES") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_schema(pg_admin: Engine) -> Iterator[Callable[[], str]]:
    """Makes fresh schemas (returning a URL bound to each); drops them all at session end."""
    created: list[str] = []
    run = f"hearth_test_{os.getpid()}_{secrets.token_hex(3)}"

    def make() -> str:
        name = f"{run}_{len(created)}"
        with pg_admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        created.append(name)
        return schema_url(PG_URL, name)

    yield make
    with pg_admin.begin() as conn:
        for name in created:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


@pytest.fixture(scope="session")
def pg_migrated(pg_schema: Callable[[], str]) -> str:
    url = pg_schema()
    upgrade(url)
    return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fresh_url(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty, unmigrated database."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'hearth.db'}"
    make: Callable[[], str] = request.getfixturevalue("pg_schema")
    return make()


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated, empty database."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'hearth.db'}"
        upgrade(url)
        return url
    # One migrated schema per run, emptied before each test: much cheaper than migrating.
    url = str(request.getfixturevalue("pg_migrated"))
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            text("TRUNCATE response_input_items, responses, usage_records, api_keys RESTART IDENTITY CASCADE")
        )
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def keys(sessions: sessionmaker[Session]) -> KeyStore:
    return KeyStore(sessions)
