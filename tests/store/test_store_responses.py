"""The stored-responses store on SQLite and PostgreSQL: owners, chains, pages, races, sweeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hearth.inference.events import Usage
from hearth.inference.responses import InputItem, OutputItem, ResponseRecord
from hearth.inference.types import ImagePart, Message, TextPart, ToolCall
from hearth.store.keys import KeyStore
from hearth.store.responses import ChainBroken, ResponseStore, message_from_json, message_json
from hearth.store.tables import StoredInputItem


@pytest.fixture
def store(sessions: sessionmaker[Session]) -> ResponseStore:
    return ResponseStore(sessions)


def record(
    rid: str, owner: int | None, status: str = "completed", previous: str | None = None, **kw: object
) -> ResponseRecord:
    return ResponseRecord(
        id=rid,
        key_id=owner,
        model="m",
        status=status,  # type: ignore[arg-type]
        created_at=kw.pop("created_at", datetime.now(UTC)),  # type: ignore[arg-type]
        previous_response_id=previous,
        output=[OutputItem("message", f"msg_{rid}", "completed", text=f"answer {rid}")],
        usage=Usage(10, 3, 2),
        **kw,  # type: ignore[arg-type]
    )


def items(rid: str, n: int = 1) -> list[InputItem]:
    return [
        InputItem(
            f"in_{rid}_{i}", Message.of("user", f"{rid} says {i}"), {"id": f"in_{rid}_{i}", "type": "message"}
        )
        for i in range(n)
    ]


def test_messages_round_trip_through_json() -> None:
    message = Message(
        "assistant",
        (TextPart("look"), ImagePart(b"\x89PNG", None, "image/png"), ImagePart(None, "https://x/y.png")),
        (ToolCall("call_1", "f", '{"a": 1}'),),
        name="helper",
    )
    assert message_from_json(message_json(message)) == message
    tool = Message("tool", (TextPart("42"),), tool_call_id="call_1")
    assert message_from_json(message_json(tool)) == tool


def test_owner_sees_only_its_own(store: ResponseStore, keys: KeyStore) -> None:
    alice, _ = keys.create("alice")
    bob, _ = keys.create("bob")
    store.insert(record("r1", alice.id), items("r1"))
    store.insert(record("shared", None), items("shared"))
    got = store.get("r1", alice.id)
    assert got is not None and got.output_text == "answer r1" and got.usage == Usage(10, 3, 2)
    assert store.get("r1", bob.id) is None
    assert store.get("r1", None) is None  # a keyless server does not see keyed responses
    assert store.get("shared", None) is not None and store.get("shared", alice.id) is None
    assert store.input_items("r1", bob.id) is None
    assert not store.delete("r1", bob.id) and store.get("r1", alice.id) is not None
    assert store.delete("r1", alice.id) and store.get("r1", alice.id) is None


def test_chain_is_oldest_first_and_breaks_loudly(store: ResponseStore) -> None:
    store.insert(record("a", None), items("a", 2))
    store.insert(record("b", None, previous="a"), items("b"))
    store.insert(record("c", None, previous="b"), items("c"))
    turns = store.chain("c", None)
    assert turns is not None
    assert [[m.text for m in t.inputs] for t in turns] == [
        ["a says 0", "a says 1"],
        ["b says 0"],
        ["c says 0"],
    ]
    assert [t.output[0].text for t in turns] == ["answer a", "answer b", "answer c"]
    assert store.chain("nope", None) is None
    assert store.chain("c", 12345) is None
    store.delete("b", None)
    with pytest.raises(ChainBroken) as broken:
        store.chain("c", None)
    assert broken.value.missing == "b"


def test_input_items_pages_both_ways(store: ResponseStore) -> None:
    store.insert(record("r", None), items("r", 5))
    first = store.input_items("r", None, limit=2)
    assert first is not None and first.has_more
    assert [i["id"] for i in first.items] == ["in_r_4", "in_r_3"]
    rest = store.input_items("r", None, limit=2, after="in_r_3")
    assert rest is not None and [i["id"] for i in rest.items] == ["in_r_2", "in_r_1"] and rest.has_more
    last = store.input_items("r", None, limit=2, after="in_r_1")
    assert last is not None and [i["id"] for i in last.items] == ["in_r_0"] and not last.has_more
    ascending = store.input_items("r", None, limit=10, order="asc", after="in_r_1")
    assert ascending is not None and [i["id"] for i in ascending.items] == ["in_r_2", "in_r_3", "in_r_4"]


def test_cancel_wins_over_a_later_finish(store: ResponseStore) -> None:
    queued = record("bg", None, status="queued", background=True)
    queued.output, queued.usage = [], None
    store.insert(queued, items("bg"), worker="w1")
    stored = store.get("bg", None)
    assert stored is not None and stored.status == "queued" and stored.usage is None
    assert store.mark_started("bg")
    assert store.cancel("bg", None)
    assert not store.cancel("bg", None)  # once
    assert store.heartbeat(["bg"]) == set()  # the runner learns of it on its next beat
    done = record("bg", None, status="completed", background=True)
    finished = store.finish(done)
    assert finished is not None and finished.status == "cancelled"
    assert finished.output_text == "answer bg" and finished.usage == Usage(10, 3, 2)  # partial work kept


def test_cancelled_while_queued_never_starts(store: ResponseStore) -> None:
    queued = record("q", None, status="queued", background=True)
    store.insert(queued, items("q"))
    assert store.cancel("q", None)
    assert not store.mark_started("q")


def test_only_background_responses_cancel(store: ResponseStore) -> None:
    store.insert(record("fg", None, status="in_progress"), items("fg"))
    assert not store.cancel("fg", None)


def test_stale_heartbeats_fail_and_live_ones_stay(store: ResponseStore) -> None:
    for rid in ("live", "dead"):
        store.insert(record(rid, None, status="in_progress", background=True), items(rid))
    assert store.heartbeat(["live", "dead", "gone"]) == {"live", "dead"}
    assert store.fail_stale(datetime.now(UTC) - timedelta(seconds=30), "stopped") == 0
    store.heartbeat(["live"])
    assert store.fail_stale(datetime.now(UTC) + timedelta(seconds=1), "stopped") == 2
    dead = store.get("dead", None)
    assert dead is not None and dead.status == "failed"
    assert dead.error is not None and dead.error.message == "stopped" and dead.error.code == "server_error"


def test_purge_by_age_keeps_recent_and_running(store: ResponseStore, sessions: sessionmaker[Session]) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    store.insert(record("old", None, created_at=old), items("old", 3))
    store.insert(record("old-running", None, status="in_progress", background=True, created_at=old), [])
    store.insert(record("new", None), items("new"))
    assert store.purge(datetime.now(UTC) - timedelta(days=30)) == 1
    assert store.get("old", None) is None and store.input_items("old", None) is None
    assert store.get("old-running", None) is not None and store.get("new", None) is not None
    with sessions() as session:  # the items went with their response (ON DELETE CASCADE)
        left = session.scalars(select(StoredInputItem.response_id)).all()
    assert left == ["new"]
