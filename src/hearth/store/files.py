"""Uploaded files (OpenAI's Files API): create, list, read, delete, each scoped to its owner.

Every call names an ``owner`` (the key id, or ``None`` on a server without keys), and a file
is visible only to its owner: another key's file is as absent as an unknown id. The bytes live
in the database (a BLOB in SQLite, ``bytea`` in PostgreSQL, both up to 1 GB a value), so every
replica reads what any one of them took in.

Blocking (synchronous SQLAlchemy): the gateway calls it from a worker thread.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session, sessionmaker

from hearth.store.errors import db_errors
from hearth.store.tables import StoredFile, utcnow


@dataclass(frozen=True, slots=True)
class FileView:
    id: str
    purpose: str
    filename: str
    bytes: int
    created_at: datetime


# Everything but the bytes: listings and lookups never load a file's content.
_META = (StoredFile.id, StoredFile.purpose, StoredFile.filename, StoredFile.size_bytes, StoredFile.created_at)


def _view(row: StoredFile) -> FileView:
    return FileView(row.id, row.purpose, row.filename, row.size_bytes, row.created_at)


def _owned(owner: int | None) -> ColumnElement[bool]:
    return StoredFile.key_id.is_(None) if owner is None else StoredFile.key_id == owner


class FileStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(self, owner: int | None, purpose: str, filename: str, content: bytes) -> FileView:
        row = StoredFile(
            id=f"file-{uuid.uuid4().hex}",
            key_id=owner,
            purpose=purpose,
            filename=filename,
            size_bytes=len(content),
            content=content,
            created_at=utcnow(),
        )
        with db_errors(), self._sessions() as session:
            session.add(row)
            session.commit()
            return _view(row)

    def list(
        self, owner: int | None, purpose: str | None, limit: int, after: str | None, newest_first: bool
    ) -> tuple[list[FileView], bool]:
        """A page of the owner's files and whether more follow (``after``: the last id seen)."""
        order = (
            (StoredFile.created_at.desc(), StoredFile.id.desc())
            if newest_first
            else (StoredFile.created_at.asc(), StoredFile.id.asc())
        )
        query = select(*_META).where(_owned(owner))
        if purpose:
            query = query.where(StoredFile.purpose == purpose)
        with db_errors(), self._sessions() as session:
            rows = [FileView(*r) for r in session.execute(query.order_by(*order)).all()]
        if after is not None:
            ids = [r.id for r in rows]
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        return rows[:limit], len(rows) > limit

    def get(self, owner: int | None, file_id: str) -> FileView | None:
        with db_errors(), self._sessions() as session:
            row = session.execute(select(*_META).where(StoredFile.id == file_id, _owned(owner))).first()
            return None if row is None else FileView(*row)

    def content(self, owner: int | None, file_id: str) -> bytes | None:
        with db_errors(), self._sessions() as session:
            found = session.execute(
                select(StoredFile.content).where(StoredFile.id == file_id, _owned(owner))
            ).scalar_one_or_none()
            return None if found is None else bytes(found)

    def delete(self, owner: int | None, file_id: str) -> bool:
        with db_errors(), self._sessions() as session:
            result = session.execute(delete(StoredFile).where(StoredFile.id == file_id, _owned(owner)))
            session.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]
