"""Files as a service: what ``/v1/files`` asks for, each file owned by the key that uploaded it
(shared on a server without keys). Batch jobs read their input from here."""

from __future__ import annotations

import asyncio

from hearth.errors import InvalidRequest, NotFound, PayloadTooLarge
from hearth.gateway.call import Call
from hearth.store.files import FileStore, FileView

# OpenAI's purposes; Hearth reads "batch" files, and keeps the others for the clients that send them.
PURPOSES = ("batch", "assistants", "fine-tune", "vision", "user_data", "evals")


def _owner(call: Call) -> int | None:
    key = call.identity.key
    return None if key is None else key.id


def _missing(file_id: str) -> NotFound:
    return NotFound(f"No such File object: {file_id}", param="file_id")


class Files:
    def __init__(self, store: FileStore, max_bytes: int) -> None:
        self._store = store
        self.max_bytes = max_bytes

    async def upload(self, call: Call, purpose: str, filename: str, content: bytes) -> FileView:
        if purpose not in PURPOSES:
            raise InvalidRequest(f"purpose must be one of {', '.join(PURPOSES)}", param="purpose")
        if len(content) > self.max_bytes:
            raise PayloadTooLarge(
                f"the file is {len(content)} bytes; this server keeps files of at most {self.max_bytes}",
                param="file",
            )
        if not content:
            raise InvalidRequest("the file is empty", param="file")
        name = (filename or "upload").rsplit("/", 1)[-1][:255]
        return await asyncio.to_thread(self._store.create, _owner(call), purpose, name, content)

    async def page(
        self, call: Call, purpose: str | None, limit: int, after: str | None, newest_first: bool
    ) -> tuple[list[FileView], bool]:
        return await asyncio.to_thread(self._store.list, _owner(call), purpose, limit, after, newest_first)

    async def get(self, call: Call, file_id: str) -> FileView:
        found = await asyncio.to_thread(self._store.get, _owner(call), file_id)
        if found is None:
            raise _missing(file_id)
        return found

    async def content(self, call: Call, file_id: str) -> bytes:
        found = await asyncio.to_thread(self._store.content, _owner(call), file_id)
        if found is None:
            raise _missing(file_id)
        return found

    async def delete(self, call: Call, file_id: str) -> None:
        if not await asyncio.to_thread(self._store.delete, _owner(call), file_id):
            raise _missing(file_id)
