"""The web UI: ``/`` serves the single page, ``/static/...`` its ES modules, styles and icon,
and ``/ui/config`` what the sign-in page needs to know before it has a key.

The page is plain HTML, CSS and JavaScript modules from ``hearth/web/static`` with no build step.
It talks to the same public API as any client, with the key the user types in.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from hearth import __version__
from hearth.api.deps import services
from hearth.gateway.auth import ADMIN_KEY_FILE
from hearth.guide import hearth_command, in_checkout, is_loopback, key_command

STATIC_DIR = Path(__file__).resolve().parents[2] / "web" / "static"

# The page runs only its own scripts and talks only to this server; images may be local blobs.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The speech panel records from the microphone; nothing else (camera, location) is asked for.
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    "Cache-Control": "no-cache",
}


class _Static(StaticFiles):
    """StaticFiles that asks browsers to revalidate, so an upgraded server serves its new UI."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"cache-control", b"no-cache"),
                    (b"x-content-type-options", b"nosniff"),
                ]
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


router = APIRouter(tags=["Web UI"])
router.mount("/static", _Static(directory=STATIC_DIR, check_dir=False), name="static")


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS)


class UiConfig(BaseModel):
    """What the page shows before sign-in. Nothing secret: it is served without a key."""

    version: str
    auth: bool  # False with --no-auth: the page skips sign-in
    loopback: bool  # bound to loopback only: the page may offer operator sign-in
    default_chat_model: str | None  # the chat model with the alias "default", else the first one
    key_command: str | None  # the command the banner prints to make a key; None without auth
    make_key: str | None  # the Makefile's way, when the server runs from a checkout
    admin_key: str | None  # where the admin secret is kept (never the secret itself)


@router.get("/ui/config", response_model=UiConfig, tags=["Web UI"])
def ui_config(request: Request, response: Response) -> UiConfig:
    """The web UI's start-up facts: whether keys are needed and how to get one. Needs no key.

    A plain ``def`` (a worker thread): it looks at the file system, as the banner does, and is
    asked once per page load.
    """
    response.headers["Cache-Control"] = "no-store"
    found = services(request)
    settings = found.settings
    auth = not settings.no_auth
    # Paths on the server (its data folder, its config, the admin key's file) are for a visitor
    # on the server's own machine; anyone else reading this page before sign-in learns only
    # that a key is made there.
    local = request.client is not None and is_loopback(request.client.host)
    checkout = local and in_checkout()
    admin_file = str(settings.data_dir / ADMIN_KEY_FILE) if local else f"DATA_DIR/{ADMIN_KEY_FILE}"
    command = key_command(settings, hearth_command()) if local else "hearth keys create me"
    return UiConfig(
        version=__version__,
        auth=auth,
        loopback=is_loopback(settings.host),
        default_chat_model=found.catalog.default_chat_model(),
        key_command=command if auth else None,
        make_key="make key NAME=me" if auth and checkout else None,
        admin_key=None if not auth else "HEARTH_ADMIN_KEY" if settings.admin_key else admin_file,
    )
