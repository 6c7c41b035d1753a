"""The web explorer every node serves at `/`: read-only pages with stable URLs.

    /                       the network: status, charts, validators, latest blocks and txs
    /blocks?before=H        blocks, newest first, a page at a time
    /blocks/{height|hash}   one block: header, txs, commit signatures, prev/next
    /tx/{hash}              one tx: status (and why it was rejected), commands in words
    /accounts/{id}          balances, role, frozen, history newest first (?before=H:P)
    /search?q=...           a height, tx or block hash (or 8+ hex digits), account, KHQR
                            md5 or KHQR code: straight to its page, or the matches
    /khqr?qr=CODE | ?md5=M  a KHQR code in words, drawn, its expiry and payment status
    /static/{file}          the pages' script, style and icon (node/web/)

Pages are rendered on the server (they work without JavaScript); the scripts add live
updates (the feed of `node.webfeed`), charts and local times. Every page reads a bounded
number of records, escapes everything it shows (`node.webhtml`) and is sent with a
Content-Security-Policy that allows scripts and styles from these files only. A request
for something missing or malformed is a page that says so (404 or 400), never a 500.
"""

from __future__ import annotations

from aiohttp import web

from ledger import chain
from ledger.ids import is_account_id
from ledger.references import is_khqr_md5
from node.runtime import Node
from node.webblocks import block_page, blocks_list, home
from node.webchain import (
    HEX_RE,
    MIN_PREFIX,
    find_block_heights,
    find_tx_hashes,
)
from node.webfeed import add_feed
from node.webhtml import (
    Markup,
    account_url,
    block_url,
    join,
    link,
    tag,
    tx_url,
    with_query,
)
from node.webkhqr import khqr_page
from node.webpage import (
    DIGITS_RE,
    MAX_QUERY,
    STATIC,
    PageError,
    StaticFiles,
    html_not_found,
    html_page,
    node_of,
    respond,
    static_file,
)
from node.webtxs import account_page, tx_page


@html_page
async def search(request: web.Request) -> web.Response:
    node = node_of(request)
    query = request.query.get("q", "").strip()
    if len(query) > MAX_QUERY:
        raise PageError(400, "Search", f"a search is at most {MAX_QUERY} characters")
    if not query:
        return respond(request, "Search", _search_help(), query=query)
    target = find_target(node, query)
    if isinstance(target, str):
        raise web.HTTPFound(target)
    if not target:
        raise PageError(
            404, "Nothing found", f"nothing on this chain matches {query!r}", _search_help()
        )
    items = join(tag("li", link(href, label)) for href, label in target)
    main = join([tag("p", f"{query!r} matches several things:"), tag("ul", items)])
    return respond(request, "Search", main, query=query)


def _search_help() -> Markup:
    return tag(
        "p",
        "Search for a block height, a transaction or block hash (or 8 or more of "
        "its first hex digits), an account (sokha@aba), the md5 of a KHQR code or a "
        "KHQR code itself.",
        class_="help",
    )


def find_target(node: Node, query: str) -> str | list[tuple[str, str]]:
    """Where a search goes: the one page it names (a URL), else every match (maybe none)."""
    text = query.lower()
    if query.startswith("000201") and HEX_RE.fullmatch(text) is None:
        return with_query("/khqr", {"qr": query})  # a KHQR code (a hash is hex only)
    if "@" in text:
        return account_url(text) if is_account_id(text) else []
    if DIGITS_RE.fullmatch(text) and (len(text) < MIN_PREFIX or int(text) <= node.engine.height):
        return block_url(int(text))
    if HEX_RE.fullmatch(text) is None:
        return []
    matches: list[tuple[str, str]] = []
    if is_khqr_md5(text) and chain.get_payments(node.store, text, 1):
        matches.append((with_query("/khqr", {"md5": text}), f"the KHQR code with md5 {text}"))
    matches += [(tx_url(h.hex()), f"transaction {h.hex()}") for h in find_tx_hashes(node, text)]
    matches += [(block_url(h), f"block {h}") for h in find_block_heights(node, text)]
    if DIGITS_RE.fullmatch(text) and not matches:
        return block_url(int(text))  # a height beyond the tip: its page says so
    return matches[0][0] if len(matches) == 1 else matches


def add_routes(app: web.Application) -> None:
    """The explorer's pages, its static files and its live feed (`/v1/events`)."""
    app[STATIC] = StaticFiles()
    app.middlewares.append(html_not_found)
    add_feed(app)
    get = app.router.add_get
    get("/", home)
    get("/blocks", blocks_list)
    get("/blocks/{ref}", block_page)
    get("/tx/{hash}", tx_page)
    get("/accounts/{account}", account_page)
    get("/search", search)
    get("/khqr", khqr_page)
    get("/static/{name}", static_file)
