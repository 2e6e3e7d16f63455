"""Reading API keys from requests, and the admin secret (``HEARTH_ADMIN_KEY`` or a bootstrap file)."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from hearth.errors import AuthenticationFailed

MAX_SECRET_LENGTH = 256
ADMIN_KEY_FILE = "admin.key"


def presented_secret(authorization: str | None, x_api_key: str | None) -> str:
    """The secret a client sent as ``Authorization: Bearer`` (OpenAI) or ``x-api-key`` (Anthropic)."""
    secret = None
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationFailed("malformed Authorization header: expected 'Bearer <key>'")
        secret = value.strip()
    elif x_api_key:
        secret = x_api_key.strip()
    if not secret:
        raise AuthenticationFailed(
            "you didn't provide an API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
        )
    if len(secret) > MAX_SECRET_LENGTH or not secret.isascii() or not secret.isprintable():
        raise AuthenticationFailed("the API key provided is malformed")
    return secret


def load_admin_secret(data_dir: Path, configured: str | None) -> str:
    """``HEARTH_ADMIN_KEY`` if set; otherwise a secret made on first start, stored with mode 600."""
    if configured:
        return configured
    path = data_dir / ADMIN_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = "hk-admin-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def is_admin(presented: str, admin_secret: str) -> bool:
    return hmac.compare_digest(presented.encode(), admin_secret.encode())
