from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

import hearth
from hearth.store import migrate
from hearth.store.tables import Base


def _diffs(url: str) -> list[object]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migration_matches_models(fresh_url: str) -> None:
    assert migrate.current_revision(fresh_url) is None
    migrate.upgrade(fresh_url)
    assert migrate.current_revision(fresh_url) == migrate.head_revision()
    assert migrate.is_up_to_date(fresh_url)
    assert _diffs(fresh_url) == []

    # The comparison does notice drift (so the empty result above means something).
    engine = create_engine(fresh_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_usage_records_model"))
    engine.dispose()
    assert any(d[0] == "add_index" for d in _diffs(fresh_url))  # type: ignore[index]


def test_upgrade_is_idempotent_and_downgrade_works(fresh_url: str) -> None:
    migrate.upgrade(fresh_url)
    migrate.upgrade(fresh_url)
    assert {"api_keys", "usage_records"} <= _tables(fresh_url)
    migrate.downgrade(fresh_url, "base")
    assert migrate.current_revision(fresh_url) is None
    assert _tables(fresh_url) <= {"alembic_version"}
    migrate.upgrade(fresh_url)
    assert migrate.is_up_to_date(fresh_url)


def test_concurrent_upgrades_are_serialised(fresh_url: str) -> None:
    # Replicas starting together, as separate processes: without the advisory lock / flock,
    # all but one would fail (or deadlock) on CREATE TABLE.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(hearth.__file__).parents[1]), env.get("PYTHONPATH", "")])
    code = "import sys; from hearth.store.migrate import upgrade; upgrade(sys.argv[1])"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, fresh_url], env=env, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    assert migrate.current_revision(fresh_url) == migrate.head_revision()
    assert _diffs(fresh_url) == []


def test_threads_in_one_process_are_serialised(fresh_url: str) -> None:
    with ThreadPoolExecutor(3) as pool:
        for future in [pool.submit(migrate.upgrade, fresh_url) for _ in range(3)]:
            future.result(timeout=60)
    assert migrate.is_up_to_date(fresh_url)


def test_percent_in_url_survives_configparser() -> None:
    cfg = migrate.alembic_config("postgresql+psycopg://u:p%40ss@h/db?options=-csearch_path%3Dx")
    assert (
        cfg.get_main_option("sqlalchemy.url")
        == "postgresql+psycopg://u:p%40ss@h/db?options=-csearch_path%3Dx"
    )


@pytest.mark.parametrize(
    "name",
    [
        "env.py",
        "script.py.mako",
        "versions/0001_initial.py",
        "versions/0003_routes_runtime_models.py",
        "versions/0004_responses.py",
    ],
)
def test_migration_files_live_in_the_package(name: str) -> None:
    assert (migrate.MIGRATIONS_DIR / name).is_file()
