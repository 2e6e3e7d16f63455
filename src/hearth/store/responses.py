"""Stored responses: insert, finish, read, chain, list input items, cancel, delete, sweep, purge.

Every read and write names an ``owner`` (the key id, or ``None`` on a server without keys), and
a row is visible only to its owner: another key's response is as absent as an unknown id.

Status changes are single conditional UPDATEs (``WHERE status IN ('queued', 'in_progress')``),
so a cancel from one replica, the runner finishing on another, and the stale sweep of a third
cannot overwrite each other's outcome: the first to land wins, the others see no row change.

Blocking (synchronous SQLAlchemy): the gateway calls it from a worker thread.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, Select, bindparam, delete, func, literal_column, select, update
from sqlalchemy.orm import Session, sessionmaker

from hearth.inference.events import Usage
from hearth.inference.responses import (
    ACTIVE,
    InputItem,
    ItemPage,
    OutputItem,
    ResponseError,
    ResponseRecord,
    Turn,
)
from hearth.inference.types import ImagePart, Message, Part, TextPart, ToolCall
from hearth.store.errors import db_errors
from hearth.store.tables import StoredInputItem, StoredResponse, utcnow

MAX_CHAIN = 10_000  # turns followed back through previous_response_id (a guard, never reached)


class ChainBroken(LookupError):
    """A response of the chain is gone (deleted or purged): ``missing`` is its id."""

    def __init__(self, missing: str) -> None:
        super().__init__(missing)
        self.missing = missing


# -- JSON forms ----------------------------------------------------------------------------------


def message_json(message: Message) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            parts.append({"text": part.text})
        else:
            data = None if part.data is None else base64.b64encode(part.data).decode()
            parts.append({"image": {"data": data, "url": part.url, "media_type": part.media_type}})
    out: dict[str, Any] = {"role": message.role, "parts": parts}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def message_from_json(data: dict[str, Any]) -> Message:
    parts: list[Part] = []
    for part in data.get("parts", []):
        if "text" in part:
            parts.append(TextPart(part["text"]))
        else:
            image = part["image"]
            raw = None if image.get("data") is None else base64.b64decode(image["data"])
            parts.append(ImagePart(raw, image.get("url"), image.get("media_type")))
    calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in data.get("tool_calls", []))
    return Message(data["role"], tuple(parts), calls, data.get("tool_call_id"), data.get("name"))


def _item_json(item: OutputItem) -> dict[str, Any]:
    if item.type == "message":
        return {"type": "message", "id": item.id, "status": item.status, "text": item.text}
    return {
        "type": "function_call",
        "id": item.id,
        "status": item.status,
        "call_id": item.call_id,
        "name": item.name,
        "arguments": item.arguments,
    }


def _item(data: dict[str, Any]) -> OutputItem:
    return OutputItem(
        type=data["type"],
        id=data["id"],
        status=data.get("status", "completed"),
        text=data.get("text", ""),
        call_id=data.get("call_id", ""),
        name=data.get("name", ""),
        arguments=data.get("arguments", ""),
    )


def _error_json(error: ResponseError | None) -> dict[str, Any] | None:
    return None if error is None else {"kind": error.kind, "code": error.code, "message": error.message}


def _record(row: StoredResponse) -> ResponseRecord:
    error = row.error
    return ResponseRecord(
        id=row.id,
        key_id=row.key_id,
        model=row.model,
        status=row.status,  # type: ignore[arg-type]
        created_at=row.created_at,
        background=row.background,
        store=True,
        previous_response_id=row.previous_response_id,
        instructions=row.instructions,
        params=row.params,
        output=[_item(i) for i in row.output],
        usage=None if row.status in ACTIVE else Usage(row.input_tokens, row.output_tokens, row.cached_tokens),
        error=None if error is None else ResponseError(error["kind"], error.get("code"), error["message"]),
        incomplete_reason=row.incomplete_reason,
        completed_at=row.completed_at,
    )


def _outcome(record: ResponseRecord) -> dict[str, Any]:
    """The columns a finished (or cancelled) run writes."""
    usage = record.usage or Usage()
    return {
        "output": [_item_json(i) for i in record.output],
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "error": _error_json(record.error),
        "incomplete_reason": record.incomplete_reason,
        "completed_at": record.completed_at or utcnow(),
    }


# -- the store -----------------------------------------------------------------------------------


@functools.cache
def _chain_queries(keyless: bool) -> tuple[Any, Any]:
    """The chain's two statements, built once (building them cost more than running them)."""
    owner = StoredResponse.key_id.is_(None) if keyless else StoredResponse.key_id == bindparam("owner")
    first: Any = select(
        StoredResponse.id, StoredResponse.previous_response_id, literal_column("0").label("depth")
    ).where(StoredResponse.id == bindparam("head"), owner)
    links: Any = first.cte("links", recursive=True)
    parent = (
        select(StoredResponse.id, StoredResponse.previous_response_id, (links.c.depth + 1).label("depth"))
        .join(links, StoredResponse.id == links.c.previous_response_id)
        .where(links.c.depth < MAX_CHAIN)
    )
    links = links.union_all(parent)
    turns = (
        select(
            StoredResponse.id,
            StoredResponse.previous_response_id,
            StoredResponse.output,
            StoredResponse.status,
        )
        .join(links, links.c.id == StoredResponse.id)
        .order_by(links.c.depth.desc())
    )
    items = (
        select(StoredInputItem.response_id, StoredInputItem.message)
        .where(StoredInputItem.response_id.in_(bindparam("ids", expanding=True)))
        .order_by(StoredInputItem.position)
    )
    return turns, items


def _changed(session: Session, stmt: Any) -> int:
    """Run an UPDATE or DELETE; how many rows it changed."""
    return int(cast(CursorResult[Any], session.execute(stmt)).rowcount)


def _owned(stmt: Any, owner: int | None) -> Any:
    column = StoredResponse.key_id
    return stmt.where(column.is_(None) if owner is None else column == owner)


class ResponseStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def insert(self, record: ResponseRecord, items: Sequence[InputItem], worker: str | None = None) -> None:
        """A new response and its input items, in one transaction."""
        outcome = {"output": []} if record.status in ACTIVE else _outcome(record)
        row = StoredResponse(
            id=record.id,
            key_id=record.key_id,
            model=record.model,
            status=record.status,
            background=record.background,
            previous_response_id=record.previous_response_id,
            instructions=record.instructions,
            params=dict(record.params),
            created_at=record.created_at,
            worker=worker,
            heartbeat_at=utcnow() if record.status in ACTIVE else None,
            **outcome,
        )
        with db_errors(), self._sessions() as session:
            session.add(row)
            session.flush()  # the parent row first: PostgreSQL checks the items' foreign key
            session.add_all(
                StoredInputItem(
                    response_id=record.id,
                    position=i,
                    item_id=item.id,
                    item=dict(item.item),
                    message=message_json(item.message),
                )
                for i, item in enumerate(items)
            )
            session.commit()

    def mark_started(self, response_id: str) -> bool:
        """queued -> in_progress; False if it was cancelled (or deleted) meanwhile."""
        return self._update(response_id, ("queued",), status="in_progress", heartbeat_at=utcnow()) == 1

    def finish(self, record: ResponseRecord) -> ResponseRecord | None:
        """Write a run's outcome. If a cancel (or the stale sweep) got there first, its status
        stands and only the output and usage are added; the stored record is returned."""
        outcome = _outcome(record)
        if self._update(record.id, ACTIVE, status=record.status, heartbeat_at=None, **outcome) == 0:
            self._update(record.id, ("cancelled",), heartbeat_at=None, **outcome)
        return self.get(record.id, record.key_id)

    def cancel(self, response_id: str, owner: int | None) -> bool:
        """Mark an active background response cancelled; its runner notices on its next beat."""
        stmt = _owned(update(StoredResponse), owner).where(
            StoredResponse.id == response_id,
            StoredResponse.status.in_(ACTIVE),
            StoredResponse.background.is_(True),
        )
        with db_errors(), self._sessions() as session:
            done = _changed(session, stmt.values(status="cancelled", completed_at=utcnow()))
            session.commit()
        return bool(done)

    def get(self, response_id: str, owner: int | None) -> ResponseRecord | None:
        with db_errors(), self._sessions() as session:
            row = session.scalars(
                _owned(select(StoredResponse), owner).where(StoredResponse.id == response_id)
            ).first()
            return None if row is None else _record(row)

    def chain(self, response_id: str, owner: int | None) -> list[Turn] | None:
        """The conversation ending with ``response_id``, oldest turn first (one recursive query
        for the links, one for the input items); ``None`` if that response is not the owner's.

        Raises :class:`ChainBroken` when an earlier turn was deleted or purged.
        """
        turns_query, items_query = _chain_queries(owner is None)
        with db_errors(), self._sessions() as session:
            conn = session.connection()  # Core rows: the ORM layer costs more than the query here
            rows = conn.execute(turns_query, {"head": response_id, "owner": owner}).all()
            if not rows:
                return None
            if rows[0].previous_response_id is not None:
                raise ChainBroken(rows[0].previous_response_id)
            ids = [r.id for r in rows]
            items = conn.execute(items_query, {"ids": ids}).all()
        inputs: dict[str, list[Message]] = {i: [] for i in ids}
        for item in items:
            inputs[item.response_id].append(message_from_json(item.message))
        return [Turn(tuple(inputs[r.id]), tuple(_item(o) for o in r.output), r.status) for r in rows]

    def input_items(
        self,
        response_id: str,
        owner: int | None,
        *,
        after: str | None = None,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
    ) -> ItemPage | None:
        """A page of a response's input items; ``after`` is the id of the last item already seen."""
        with db_errors(), self._sessions() as session:
            found = session.scalar(
                _owned(select(StoredResponse.id), owner).where(StoredResponse.id == response_id)
            )
            if found is None:
                return None
            stmt: Select[Any] = select(StoredInputItem.item).where(StoredInputItem.response_id == response_id)
            position = StoredInputItem.position
            if after is not None:
                cursor = session.scalar(
                    select(position).where(
                        StoredInputItem.response_id == response_id, StoredInputItem.item_id == after
                    )
                )
                if cursor is not None:
                    stmt = stmt.where(position < cursor if order == "desc" else position > cursor)
            stmt = stmt.order_by(position.desc() if order == "desc" else position).limit(limit + 1)
            items = list(session.scalars(stmt))
        return ItemPage(items[:limit], len(items) > limit)

    def delete(self, response_id: str, owner: int | None) -> bool:
        with db_errors(), self._sessions() as session:
            done = _changed(
                session, _owned(delete(StoredResponse), owner).where(StoredResponse.id == response_id)
            )
            session.commit()
        return bool(done)

    def count_active_background(self, owner: int) -> int:
        stmt = _owned(select(func.count()).select_from(StoredResponse), owner).where(
            StoredResponse.status.in_(ACTIVE), StoredResponse.background.is_(True)
        )
        with db_errors(), self._sessions() as session:
            return int(session.scalar(stmt) or 0)

    def heartbeat(self, response_ids: Iterable[str]) -> set[str]:
        """Refresh the heartbeat of running responses; returns those still active (the others
        were cancelled, deleted or swept)."""
        ids = list(response_ids)
        if not ids:
            return set()
        with db_errors(), self._sessions() as session:
            session.execute(
                update(StoredResponse)
                .where(StoredResponse.id.in_(ids), StoredResponse.status.in_(ACTIVE))
                .values(heartbeat_at=utcnow())
            )
            session.commit()
            active = session.scalars(
                select(StoredResponse.id).where(StoredResponse.id.in_(ids), StoredResponse.status.in_(ACTIVE))
            )
            return set(active)

    def fail_stale(self, before: datetime, message: str) -> int:
        """Mark failed every active response whose heartbeat is older than ``before``."""
        error = {"kind": "internal", "code": "server_error", "message": message}
        stmt = (
            update(StoredResponse)
            .where(StoredResponse.status.in_(ACTIVE), StoredResponse.heartbeat_at < before)
            .values(status="failed", error=error, completed_at=utcnow(), heartbeat_at=None)
        )
        with db_errors(), self._sessions() as session:
            done = _changed(session, stmt)
            session.commit()
        return int(done)

    def purge(self, before: datetime) -> int:
        """Delete the finished responses created before ``before`` (their items go with them)."""
        stmt = delete(StoredResponse).where(
            StoredResponse.created_at < before, StoredResponse.status.not_in(ACTIVE)
        )
        with db_errors(), self._sessions() as session:
            done = _changed(session, stmt)
            session.commit()
        return int(done)

    def _update(self, response_id: str, statuses: Sequence[str], **values: Any) -> int:
        stmt = (
            update(StoredResponse)
            .where(StoredResponse.id == response_id, StoredResponse.status.in_(statuses))
            .values(**values)
        )
        with db_errors(), self._sessions() as session:
            done = _changed(session, stmt)
            session.commit()
        return int(done)
