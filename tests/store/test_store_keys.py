from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from hearth.errors import InvalidRequest, NotFound
from hearth.store import keys as keys_module
from hearth.store.keys import (
    ApiKeyView,
    InvalidKeyName,
    KeyNameTaken,
    KeyNotFound,
    KeyRevoked,
    KeyStore,
    hash_secret,
)
from hearth.store.tables import ApiKey


def test_create_returns_secret_once_and_stores_only_hash(
    keys: KeyStore, sessions: sessionmaker[Session]
) -> None:
    view, secret = keys.create("alice", models=["gemma-3-270m", "gemma-3-270m"], rpm=60, tpm=10_000)
    assert secret.startswith("hk-") and len(secret) > 40
    assert view.prefix == secret[:10]
    assert view.models == ("gemma-3-270m",)
    assert (view.rpm, view.tpm, view.max_concurrent, view.monthly_tokens) == (60, 10_000, None, None)
    assert view.status() == "active" and view.expires_at is None
    assert view.created_at.tzinfo is not None
    assert not any(f.name == "secret_hash" for f in dataclasses.fields(ApiKeyView))
    with sessions() as session:
        row = session.scalars(select(ApiKey)).one()
    assert row.secret_hash == hash_secret(secret)
    assert secret not in (row.prefix, row.secret_hash)


def test_list_and_get(keys: KeyStore) -> None:
    keys.create("zed")
    keys.create("amy", monthly_tokens=1_000_000, max_concurrent=2)
    assert [k.name for k in keys.list()] == ["amy", "zed"]
    amy = keys.get("amy")
    assert (amy.monthly_tokens, amy.max_concurrent) == (1_000_000, 2)
    assert keys.get_by_id(amy.id) == amy
    assert keys.get_by_id(10_000) is None
    with pytest.raises(KeyNotFound) as info:
        keys.get("nobody")
    assert isinstance(info.value, NotFound) and info.value.status_code == 404


def test_authenticate(keys: KeyStore) -> None:
    view, secret = keys.create("bob", models=["a"])
    found = keys.authenticate(secret)
    assert found is not None and found.id == view.id
    assert found.allows_model("a") and not found.allows_model("b")
    assert keys.authenticate(secret + "x") is None
    assert keys.authenticate("hk-" + "x" * 43) is None
    assert keys.authenticate("sk-whatever") is None
    assert keys.authenticate("") is None
    assert keys.authenticate("hk-" + "a" * 10_000) is None


def test_revoke(keys: KeyStore) -> None:
    _, secret = keys.create("carol")
    revoked = keys.revoke("carol")
    assert revoked.revoked_at is not None and revoked.status() == "revoked"
    assert keys.authenticate(secret) is None
    assert keys.revoke("carol").revoked_at == revoked.revoked_at  # idempotent
    assert [k.name for k in keys.list(include_revoked=False)] == []
    with pytest.raises(KeyRevoked):
        keys.rotate("carol")
    with pytest.raises(KeyNotFound):
        keys.revoke("nobody")


def test_rotate_keeps_limits_and_kills_old_secret(keys: KeyStore) -> None:
    view, old = keys.create("dave", models=["m"], rpm=5, expires_days=10)
    new = keys.rotate("dave")
    assert new != old and new.startswith("hk-")
    assert keys.authenticate(old) is None
    after = keys.authenticate(new)
    assert after is not None
    assert after.prefix == new[:10] != view.prefix
    assert (after.id, after.models, after.rpm, after.expires_at) == (
        view.id,
        view.models,
        view.rpm,
        view.expires_at,
    )


def test_expiry(keys: KeyStore, sessions: sessionmaker[Session]) -> None:
    view, secret = keys.create("eve", expires_days=1)
    assert view.expires_at is not None
    assert timedelta(hours=23) < view.expires_at - datetime.now(UTC) <= timedelta(days=1)
    assert keys.authenticate(secret) is not None
    with sessions() as session:
        session.execute(
            update(ApiKey)
            .where(ApiKey.name == "eve")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()
    assert keys.authenticate(secret) is None
    assert keys.get("eve").status() == "expired"
    assert view.expired(now=view.expires_at + timedelta(seconds=1))


@pytest.mark.parametrize(
    "name",
    ["", "a" * 65, "x'; DROP TABLE api_keys; --", "with space", "naïve", "tab\t", "new\nline", "a/b", "a%"],
)
def test_bad_names_are_rejected(keys: KeyStore, name: str) -> None:
    with pytest.raises(InvalidKeyName) as info:
        keys.create(name)
    assert isinstance(info.value, ValueError) and isinstance(info.value, InvalidRequest)
    assert info.value.status_code == 400 and info.value.param == "name"
    for op in (keys.get, keys.revoke, keys.rotate):
        with pytest.raises(InvalidKeyName):
            op(name)
    assert keys.list() == []


def test_good_names(keys: KeyStore) -> None:
    for name in ("a", "A" * 64, "team.svc-1_prod"):
        keys.create(name)
    assert len(keys.list()) == 3


def test_duplicate_name(keys: KeyStore) -> None:
    keys.create("frank")
    with pytest.raises(KeyNameTaken) as info:
        keys.create("frank")
    assert info.value.status_code == 400 and info.value.reason == "key_name_taken"
    assert len(keys.list()) == 1


def test_duplicate_name_race_is_caught_by_the_unique_constraint(
    keys: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys.create("gina")
    # Pretend the pre-check missed the row (another process inserted it in between).
    original = Session.scalar

    def scalar_missing(self: Session, *args: object, **kwargs: object) -> object:
        return None

    monkeypatch.setattr(Session, "scalar", scalar_missing)
    with pytest.raises(KeyNameTaken):
        keys.create("gina")
    monkeypatch.setattr(Session, "scalar", original)
    assert len(keys.list()) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rpm": 0},
        {"tpm": -1},
        {"max_concurrent": True},
        {"monthly_tokens": 1.5},
        {"expires_days": 0},
        {"models": []},
    ],
)
def test_bad_limits(keys: KeyStore, kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        keys.create("limits", **kwargs)  # type: ignore[arg-type]


def test_touch_is_throttled(
    keys: KeyStore, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    view, _ = keys.create("hank")
    assert view.last_used_at is None
    keys.touch(view.id)
    first = keys.get("hank").last_used_at
    assert first is not None
    keys.touch(view.id)  # within the interval: no write
    assert keys.get("hank").last_used_at == first
    monkeypatch.setattr(keys_module, "TOUCH_INTERVAL_S", 0.0)
    keys.touch(view.id, now=first + timedelta(minutes=5))
    assert keys.get("hank").last_used_at == first + timedelta(minutes=5)


def test_secret_is_never_logged(keys: KeyStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, secret = keys.create("ivan")
    new = keys.rotate("ivan")
    keys.authenticate(new)
    keys.authenticate(secret)
    assert secret not in caplog.text and new not in caplog.text
    assert secret[10:20] not in caplog.text


def test_to_dict(keys: KeyStore) -> None:
    view, _ = keys.create("judy", models=["m"])
    data = view.to_dict()
    assert data["name"] == "judy" and data["status"] == "active" and data["models"] == ["m"]
    assert "secret_hash" not in data
    assert isinstance(data["created_at"], str)
