"""The usage rows a test app wrote, once its ledger has flushed."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient


def flush_ledger(client: TestClient) -> None:
    assert client.app.state.root.database.ledger.flush(10)  # type: ignore[attr-defined]


def rows(client: TestClient) -> list[dict[str, Any]]:
    flush_ledger(client)
    with client.app.state.root.database.engine.connect() as conn:  # type: ignore[attr-defined]
        result = conn.execute(sa.text("SELECT * FROM usage_records ORDER BY id"))
        return [dict(r._mapping) for r in result]
