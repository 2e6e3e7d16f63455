"""OpenAI's Files API: ``POST /v1/files`` (multipart ``file`` and ``purpose``), ``GET /v1/files``
(``purpose``, ``limit``, ``after``, ``order``), ``GET /v1/files/{id}``, ``GET
/v1/files/{id}/content`` and ``DELETE /v1/files/{id}``, in OpenAI's shapes. A file belongs to
the key that uploaded it; it is kept in the database, so every replica serves it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response

from hearth.api.deps import READS_STATE_ROUTE, REQUIRE_KEY, CallDep, FilesDep
from hearth.errors import PayloadTooLarge
from hearth.store.files import FileView

router = APIRouter(prefix="/v1/files", tags=["OpenAI"], dependencies=[REQUIRE_KEY])


def file_object(view: FileView) -> dict[str, Any]:
    return {
        "id": view.id,
        "object": "file",
        "bytes": view.bytes,
        "created_at": int(view.created_at.timestamp()),
        "filename": view.filename,
        "purpose": view.purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


@router.post("", summary="Upload a file")
async def upload(
    files: FilesDep,
    call: CallDep,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()],
) -> dict[str, Any]:
    content = await file.read(files.max_bytes + 1)
    if len(content) > files.max_bytes:
        raise PayloadTooLarge(
            f"the file is over {files.max_bytes} bytes, the largest this server keeps", param="file"
        )
    return file_object(await files.upload(call, purpose, file.filename or "upload", content))


@router.get("", summary="List your files", openapi_extra=READS_STATE_ROUTE)
async def list_files(
    files: FilesDep,
    call: CallDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    after: str | None = None,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    page, more = await files.page(call, purpose, limit, after, newest_first=order == "desc")
    data = [file_object(v) for v in page]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


@router.get("/{file_id}", summary="A file's details", openapi_extra=READS_STATE_ROUTE)
async def retrieve(file_id: str, files: FilesDep, call: CallDep) -> dict[str, Any]:
    return file_object(await files.get(call, file_id))


@router.get(
    "/{file_id}/content", summary="A file's content", response_class=Response, openapi_extra=READS_STATE_ROUTE
)
async def content(file_id: str, files: FilesDep, call: CallDep) -> Response:
    return Response(await files.content(call, file_id), media_type="application/octet-stream")


@router.delete("/{file_id}", summary="Delete a file")
async def delete(file_id: str, files: FilesDep, call: CallDep) -> dict[str, Any]:
    await files.delete(call, file_id)
    return {"id": file_id, "object": "file", "deleted": True}
