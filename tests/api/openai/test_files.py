"""OpenAI's Files API through the official SDK: upload, list (by purpose, paged), retrieve,
content, delete; each key sees only its own files; limits and bad input in OpenAI's shape; and
files kept in PostgreSQL, where every replica reads them."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from fastapi.testclient import TestClient

from hearth.app import build_app
from tests.conftest import MakeKey
from tests.helpers.apps import fake_settings, wait_ready
from tests.helpers.keys import ADMIN, admin_headers
from tests.helpers.services import drop_postgres_schema, fresh_postgres_schema_url

LINES = [
    {"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "fake-chat", "messages": [{"role": "user", "content": f"question {i}"}]}}
    for i in range(3)
]  # fmt: skip
JSONL = "".join(json.dumps(line) + "\n" for line in LINES).encode()


def sdk(client: TestClient, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key=secret, http_client=client, max_retries=0)


def test_upload_list_retrieve_content_delete(gw: TestClient, make_key: MakeKey) -> None:
    client = sdk(gw, make_key("files"))
    uploaded = client.files.create(file=("questions.jsonl", JSONL), purpose="batch")
    assert uploaded.id.startswith("file-") and uploaded.bytes == len(JSONL)
    assert (
        uploaded.filename == "questions.jsonl"
        and uploaded.purpose == "batch"
        and uploaded.status == "processed"
    )
    other = client.files.create(file=("notes.txt", b"hello"), purpose="user_data")
    assert client.files.retrieve(uploaded.id).bytes == len(JSONL)
    assert client.files.content(uploaded.id).read() == JSONL
    listed = [f.id for f in client.files.list()]
    assert listed == [other.id, uploaded.id]  # newest first
    assert [f.id for f in client.files.list(purpose="batch")] == [uploaded.id]
    first = client.files.list(limit=1, order="asc")
    assert [f.id for f in first.data] == [uploaded.id] and first.has_more
    assert [f.id for f in client.files.list(limit=1, order="asc", after=uploaded.id).data] == [other.id]
    deleted = client.files.delete(uploaded.id)
    assert deleted.deleted and deleted.id == uploaded.id
    with pytest.raises(openai.NotFoundError, match="No such File object"):
        client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(uploaded.id)


def test_another_keys_files_are_absent(gw: TestClient, make_key: MakeKey) -> None:
    mine = sdk(gw, make_key("owner")).files.create(file=("a.jsonl", JSONL), purpose="batch")
    stranger = sdk(gw, make_key("stranger"))
    assert [f.id for f in stranger.files.list()] == []
    for attempt in (
        lambda: stranger.files.retrieve(mine.id),
        lambda: stranger.files.content(mine.id),
        lambda: stranger.files.delete(mine.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert gw.get("/v1/files").status_code == 401


def test_bad_uploads_in_openais_shape(tmp_path: Path) -> None:
    app = build_app(fake_settings(tmp_path, no_auth=False, admin_key=ADMIN, max_file_bytes=2048))
    with TestClient(app) as gw:
        wait_ready(gw)
        secret = gw.post("/admin/keys", json={"name": "bad"}, headers=admin_headers()).json()["secret"]
        client = sdk(gw, secret)
        with pytest.raises(openai.BadRequestError, match="purpose must be one of"):
            client.files.create(file=("a.jsonl", JSONL), purpose="nonsense")  # type: ignore[arg-type]
        with pytest.raises(openai.BadRequestError, match="empty"):
            client.files.create(file=("a.jsonl", b""), purpose="batch")
        too_big = gw.post(
            "/v1/files",
            headers={"Authorization": f"Bearer {secret}"},
            files={"file": ("big.jsonl", b"x" * 4096)},
            data={"purpose": "batch"},
        )
        assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "invalid_request_error"
        missing = gw.post(
            "/v1/files", headers={"Authorization": f"Bearer {secret}"}, data={"purpose": "batch"}
        )
        assert missing.status_code == 400 and "file" in missing.json()["error"]["message"]


@pytest.mark.services
def test_files_live_in_postgresql_for_every_replica(tmp_path: Path) -> None:
    """Two apps on one PostgreSQL database: a file uploaded through one is read through the other."""
    url, schema = fresh_postgres_schema_url()
    try:
        apps = [
            build_app(fake_settings(tmp_path / name, no_auth=False, admin_key=ADMIN, database_url=url))
            for name in ("a", "b")
        ]
        with TestClient(apps[0]) as first, TestClient(apps[1]) as second:
            wait_ready(first)
            wait_ready(second)
            made = first.post("/admin/keys", json={"name": "shared"}, headers=admin_headers())
            secret = made.json()["secret"]
            uploaded = sdk(first, secret).files.create(file=("q.jsonl", JSONL), purpose="batch")
            assert sdk(second, secret).files.content(uploaded.id).read() == JSONL
            assert [f.id for f in sdk(second, secret).files.list()] == [uploaded.id]
    finally:
        drop_postgres_schema(schema)
