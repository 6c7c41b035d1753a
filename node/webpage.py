"""The frame of every explorer page: the document and its headers, error pages (a
refusal is a page with a sentence, never a traceback), the static files of node/web/, and
the small parsers pages share."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from importlib import resources
from typing import Final

from aiohttp import web

from ledger.errors import LedgerError
from ledger.ids import format_amount_grouped, parse_amount
from ledger.tx import SignedTx
from node.api import NODE, Handler
from node.runtime import Node
from node.webhtml import (
    Markup,
    document,
    join,
    link,
    notice,
    tag,
    words_html,
)
from node.webwords import describe

log = logging.getLogger("bakong.web")

MAX_QUERY: Final = 2048
MAX_UINT: Final = 2**63 - 1
DIGITS_RE: Final = re.compile(r"[0-9]{1,19}")
STATIC_FILES: Final = {
    "explorer.js": "text/javascript",
    "home.js": "text/javascript",
    "explorer.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


class PageError(Exception):
    """A page that cannot be shown: `status` with a title and a sentence (and maybe a
    list of what the request could have meant)."""

    def __init__(self, status: int, title: str, message: str, extra: Markup | None = None):
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.extra = extra or Markup("")


class StaticFiles:
    """The files of node/web/, read once; each URL carries its content's hash, so a
    browser may cache it for long and never sees a stale one."""

    def __init__(self) -> None:
        folder = resources.files("node").joinpath("web")
        self.files: dict[str, tuple[bytes, str]] = {}
        self.urls: dict[str, str] = {}
        for name, content_type in STATIC_FILES.items():
            data = folder.joinpath(name).read_bytes()
            self.files[name] = (data, content_type)
            self.urls[name] = f"/static/{name}?v={hashlib.sha256(data).hexdigest()[:12]}"


STATIC: web.AppKey[StaticFiles] = web.AppKey("explorer_static", StaticFiles)


def respond(
    request: web.Request,
    title: str,
    main: Markup,
    *,
    status: int = 200,
    page: str = "page",
    scripts: Sequence[str] = (),
    query: str = "",
) -> web.Response:
    node = node_of(request)
    text = document(
        title,
        main,
        chain_id=node.chain_id,
        node_name=node.config.name,
        assets=request.app[STATIC].urls,
        scripts=scripts,
        query=query,
        page=page,
    )
    return web.Response(
        text=text, status=status, content_type="text/html", headers=SECURITY_HEADERS
    )


def error_page(request: web.Request, exc: PageError) -> web.Response:
    main = join(
        [notice(exc.message, "error"), exc.extra, tag("p", link("/", "Back to the network"))]
    )
    return respond(request, exc.title, main, status=exc.status)


def html_page(handler: Handler) -> Handler:
    """A page handler whose refusals are pages (PageError), and whose bugs are logged and
    shown as a page too, never as a traceback."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except PageError as exc:
            return error_page(request, exc)
        except web.HTTPException:
            raise
        except LedgerError as exc:
            log.warning("explorer page %s: unreadable record: %s", request.path, exc.message)
            return error_page(request, PageError(500, "Unreadable record", exc.message))
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            failure = PageError(
                500, "Internal error", "the node failed to show this page; see its log"
            )
            return error_page(request, failure)

    return wrapped


@html_page
async def static_file(request: web.Request) -> web.Response:
    found = request.app[STATIC].files.get(request.match_info["name"])
    if found is None:
        raise PageError(404, "No such file", "the explorer has no file of that name")
    data, content_type = found
    headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return web.Response(body=data, content_type=content_type, headers=headers)


@web.middleware
async def html_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A browser that asks for a page that does not exist gets a page that says so; API
    clients (and every /v1/ path) keep the JSON error."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status not in (404, 405) or not _wants_html(request):
            raise
        return error_page(
            request, PageError(exc.status, "Not found", f"this node has no page {request.path}")
        )


def _wants_html(request: web.Request) -> bool:
    api = request.path.startswith(("/v1/", "/metrics", "/khqr/"))
    return not api and "text/html" in request.headers.get("Accept", "")


def node_of(request: web.Request) -> Node:
    return request.app[NODE]


def page_uint(name: str, text: str, hi: int = MAX_UINT) -> int:
    if DIGITS_RE.fullmatch(text) is None or int(text) > hi:
        raise PageError(400, "Bad request", f"{name} must be a whole number, not {text!r}")
    return int(text)


def group_amount(text: str) -> str:
    """An exact decimal string with thousands separators."""
    decimals = len(text.partition(".")[2])
    try:
        return format_amount_grouped(parse_amount(text, decimals), decimals)
    except LedgerError:
        return text


def empty_cell(message: str) -> Markup:
    return tag("span", message, class_="empty")


def tx_words(tx: SignedTx, decimals: dict[str, int]) -> Markup:
    return join((words_html(describe(c, tx.body.signer, decimals)) for c in tx.body.commands), "; ")
