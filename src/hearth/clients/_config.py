"""Where the server is and how to authenticate: arguments first, then ``HEARTH_*`` variables."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
# Generation can take minutes; connecting cannot.
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=5.0)
_VERSION_SEGMENT = re.compile(r"v\d+[a-z0-9]*")


def api_base(base_url: str) -> str:
    """The API root: ``http://host:8000`` and ``http://host:8000/v1/`` both give ``.../v1``.

    A URL whose last path segment is already a version (``/v1``, ``/v1beta``) is kept as it is,
    so any OpenAI-compatible provider's base URL works unchanged.
    """
    url = base_url.strip().rstrip("/")
    if not re.match(r"^https?://", url):
        raise ValueError(f"the base URL must start with http:// or https://, got {base_url!r}")
    last = url.rsplit("/", 1)[-1]
    return url if _VERSION_SEGMENT.fullmatch(last) and url.count("/") > 2 else url + "/v1"


@dataclass(frozen=True)
class Endpoint:
    """Builds the HTTP requests for one server and key; sends nothing itself."""

    base_url: str
    api_key: str | None

    @classmethod
    def resolve(cls, base_url: str | None, api_key: str | None) -> Endpoint:
        url = base_url or os.environ.get("HEARTH_BASE_URL") or DEFAULT_BASE_URL
        key = api_key if api_key is not None else os.environ.get("HEARTH_API_KEY")
        return cls(api_base(url), key or None)

    @property
    def server(self) -> str:
        """The server's origin, for messages: ``http://127.0.0.1:8000``."""
        return origin(httpx.URL(self.base_url))

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "hearth-client"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Request:
        """An API request; only these carry the key (never an image download)."""
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        return httpx.Request(method, f"{self.base_url}/{path.lstrip('/')}", headers=headers, **kwargs)


def origin(url: httpx.URL) -> str:
    """``scheme://host:port`` of a request, for messages about where a connection failed."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}"
