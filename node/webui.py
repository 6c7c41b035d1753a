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

import hashlib
import io
import itertools
import logging
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any, Final

import qrcode
import qrcode.image.svg
from aiohttp import web

from ledger import chain
from ledger.errors import LedgerError
from ledger.ids import format_amount_grouped, is_account_id, parse_amount
from ledger.khqr import CURRENCY_DECIMALS, KHQR, KHQRError, decode_khqr, is_expired, khqr_md5
from ledger.references import is_khqr_md5
from ledger.state import State
from ledger.tx import SignedTx
from node import views
from node.api import NODE, Handler
from node.runtime import Node
from node.webchain import (
    HEX_RE,
    MAX_MATCHES,
    MIN_PREFIX,
    WINDOW_MS,
    BlockSummary,
    commit_signers,
    find_block_heights,
    find_tx_hashes,
    latest_txs,
    network_status,
    read_block_txs,
    read_summary,
    tx_rate,
)
from node.webfeed import FEED, add_feed
from node.webhtml import (
    Markup,
    account_link,
    account_url,
    badge,
    block_url,
    document,
    fields,
    hash_link,
    join,
    link,
    notice,
    section,
    short,
    table,
    tag,
    time_html,
    tx_url,
    with_query,
    words_html,
)
from node.webwords import amount_words, describe

log = logging.getLogger("bakong.web")

LATEST: Final = 10
BLOCKS_PAGE: Final = 25
TXS_PAGE: Final = 100
HISTORY_PAGE: Final = 20
PAYMENTS_SHOWN: Final = 20
MAX_QUERY: Final = 2048
MAX_UINT: Final = 2**63 - 1
_DIGITS_RE: Final = re.compile(r"[0-9]{1,19}")
_BEFORE_RE: Final = re.compile(r"([0-9]{1,19}):([0-9]{1,10})")
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


# ---------------------------------------------------------------------------------------
# Static files and responses.


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
    node = _node(request)
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


def _node(request: web.Request) -> Node:
    return request.app[NODE]


def _uint(name: str, text: str, hi: int = MAX_UINT) -> int:
    if _DIGITS_RE.fullmatch(text) is None or int(text) > hi:
        raise PageError(400, "Bad request", f"{name} must be a whole number, not {text!r}")
    return int(text)


def _group(text: str) -> str:
    """An exact decimal string with thousands separators."""
    decimals = len(text.partition(".")[2])
    try:
        return format_amount_grouped(parse_amount(text, decimals), decimals)
    except LedgerError:
        return text


# ---------------------------------------------------------------------------------------
# The network.


@html_page
async def home(request: web.Request) -> web.Response:
    node, feed = _node(request), request.app[FEED]
    tip = node.engine.height
    feed.window.advance(tip)
    status = network_status(node)
    now = node.clock_ms()
    recent = feed.window.since(now - WINDOW_MS)
    main = join(
        [
            _status_cards(status, tx_rate(recent, now, 60_000)),
            _charts(recent, now),
            tag(
                "div",
                section("Validators", _validators_table(status)),
                section("Peers", tag("p", ", ".join(status["peers"]) or "none", id="peers")),
                class_="pair",
            ),
            section(
                "Latest blocks",
                _blocks_table(feed.window.newest(LATEST), "blocks"),
                tag("p", link("/blocks", "All blocks")),
            ),
            section("Latest transactions", _latest_txs_table(node, tip)),
        ]
    )
    return respond(request, "Network", main, page="home", scripts=("home.js",))


def _status_cards(status: dict[str, Any], rate: float) -> Markup:
    height = status["height"]
    shown_height = link(block_url(height), str(height)) if height else Markup("0 (genesis)")

    def card(label: str, value: object, id_: str) -> Markup:
        return tag("div", tag("dt", label), tag("dd", value, id=id_), class_="card")

    return tag(
        "dl",
        card("Chain", status["chain_id"], "chain-id"),
        card("Height", shown_height, "height"),
        card("Last block", time_html(status["last_block_time"]), "last-block"),
        card("Committed tx/s (last minute)", f"{rate:.2f}", "tps"),
        card("Round of this height", str(status["round"]), "round"),
        card("Mempool", f"{status['mempool']} pending", "mempool"),
        card("Peers", str(len(status["peers"])), "peer-count"),
        card("Updates", "reload for news", "live"),
        class_="cards",
    )


def _charts(recent: list[BlockSummary], now: int) -> Markup:
    intervals = [(b.time_ms - a.time_ms) / 1000 for a, b in itertools.pairwise(recent)]
    mean = f"{sum(intervals) / len(intervals):.2f} s" if intervals else "no interval yet"
    rate5 = tx_rate(recent, now, 5 * 60_000)
    tps = tag(
        "figure",
        tag("canvas", id="tps-chart", width=600, height=180, aria_label="tx/s chart"),
        tag("figcaption", f"Committed tx/s over the last 5 minutes (mean {rate5:.2f})"),
    )
    gaps = tag(
        "figure",
        tag("canvas", id="interval-chart", width=600, height=180, aria_label="block intervals"),
        tag("figcaption", f"Seconds between the last blocks (mean {mean})"),
    )
    return section("Activity", tag("div", tps, gaps, class_="charts"))


def _validators_table(status: dict[str, Any]) -> Markup:
    if status["height"] == 0:
        rows = [(v["name"], "no commit yet") for v in status["validators"]]
    else:
        rows = [
            (v["name"], badge("signed", "ok") if v["signed"] else badge("missing", "bad"))
            for v in status["validators"]
        ]
    return table(("validator", "signed the last commit"), rows, body_id="validators")


def _blocks_table(blocks: Sequence[BlockSummary], body_id: str | None = None) -> Markup:
    rows: list[Sequence[object]] = [
        (
            link(block_url(b.height), str(b.height)),
            hash_link(block_url(b.height), b.hash),
            time_html(b.time_ms),
            b.proposer,
            str(b.txs),
        )
        for b in blocks
    ]
    if not rows:
        rows = [(_empty_cell("no blocks yet: the chain is at its genesis"),)]
    return table(("height", "hash", "time", "proposer", "txs"), rows, body_id=body_id)


def _empty_cell(message: str) -> Markup:
    return tag("span", message, class_="empty")


def _latest_txs_table(node: Node, tip: int) -> Markup:
    decimals = views.get_decimals(node.store)
    rows: list[Sequence[object]] = [
        (
            hash_link(tx_url(tx.hash.hex()), tx.hash.hex()),
            link(block_url(h), str(h)),
            _tx_words(tx, decimals),
        )
        for tx, h, _ in latest_txs(node, tip, LATEST)
    ]
    if not rows:
        rows = [(_empty_cell("no transactions yet"),)]
    return table(("tx", "block", "what"), rows, body_id="txs")


def _tx_words(tx: SignedTx, decimals: dict[str, int]) -> Markup:
    return join((words_html(describe(c, tx.body.signer, decimals)) for c in tx.body.commands), "; ")


# ---------------------------------------------------------------------------------------
# Blocks.


@html_page
async def blocks_list(request: web.Request) -> web.Response:
    node = _node(request)
    tip = node.engine.height
    before = request.query.get("before")
    top = min(tip, _uint("before", before) - 1) if before is not None else tip
    heights = range(top, max(0, top - BLOCKS_PAGE), -1)
    found = [s for s in (read_summary(node, h) for h in heights) if s is not None]
    nav = []
    if top < tip:
        nav.append(link("/blocks", "Newest"))
    if found and found[-1].height > 1:
        nav.append(link(with_query("/blocks", {"before": found[-1].height}), "Older"))
    if found:
        body = _blocks_table(found)
    elif tip == 0:
        body = notice("No blocks yet: the chain is at its genesis (height 0).")
    else:
        body = notice(f"No blocks there; the chain is at {tip}.")
    main = join(
        [tag("p", f"The chain is at height {tip}."), body, tag("nav", *nav, class_="pager")]
    )
    return respond(request, "Blocks", main)


def resolve_block(node: Node, ref: str) -> int:
    """The height a block reference names: digits are a height (8 or more digits
    beyond the tip are also tried as a hash prefix), hex a hash or a unique prefix."""
    tip = node.engine.height
    text = ref.strip().lower()
    if _DIGITS_RE.fullmatch(text) is not None:
        height = int(text)
        if 1 <= height <= tip:
            return height
        if height == 0:
            raise PageError(
                404,
                "No block 0",
                "height 0 is the genesis, which has no block; "
                f"the first block is 1 and the chain is at {tip}",
            )
        if len(text) < MIN_PREFIX or not find_block_heights(node, text):
            raise PageError(
                404, f"No block {height} yet", f"no block {height} yet; the chain is at {tip}"
            )
    if HEX_RE.fullmatch(text) is None:
        raise PageError(
            400,
            "Not a block",
            f"{ref!r} is neither a block height nor a block hash "
            f"(a height, or {MIN_PREFIX} to 64 hex digits of a hash)",
        )
    heights = find_block_heights(node, text)
    if not heights:
        raise PageError(
            404, "No such block", f"no block with a hash starting {text}; the chain is at {tip}"
        )
    if len(heights) > 1:
        choices = join(tag("li", link(block_url(h), f"block {h}")) for h in heights[:MAX_MATCHES])
        raise PageError(
            409,
            "Several blocks match",
            f"{text} starts the hash of several blocks",
            tag("ul", choices),
        )
    return heights[0]


@html_page
async def block_page(request: web.Request) -> web.Response:
    node = _node(request)
    height = resolve_block(node, request.match_info["ref"])
    block = chain.get_block_header(node.store, height)
    if block is None:
        raise PageError(404, f"No block {height} yet", f"no block {height} yet")
    tip = node.engine.height
    page_no = _uint("page", request.query.get("page", "1"), 10**9) or 1
    start = (page_no - 1) * TXS_PAGE
    total, txs = read_block_txs(node, height, start, TXS_PAGE)
    header = fields(
        [
            ("Height", str(height)),
            ("Hash", tag("code", block.hash.hex())),
            ("Time", time_html(block.time_ms)),
            ("Proposer", block.proposer),
            ("Transactions", str(total)),
            ("Previous block", _prev_link(height, block.prev_hash.hex())),
            (
                "Next block",
                link(block_url(height + 1), f"block {height + 1}")
                if height < tip
                else tag("span", "none yet: this is the newest block", id="next-block"),
            ),
            ("State hash", tag("code", block.state_hash.hex())),
            ("Tx root", tag("code", block.tx_root.hex())),
            ("Validator set hash", tag("code", block.validator_set_hash.hex())),
            ("Last commit hash", tag("code", block.last_commit_hash.hex())),
            ("Chain", block.chain_id),
        ]
    )
    nav = tag("nav", _prev_next(height, tip), class_="pager")
    main = join(
        [
            nav,
            header,
            section("Transactions", _block_txs(node, height, start, total, txs, page_no)),
            section("Commit signatures", _signatures(node, height)),
            _rejected_here(node, height),
        ]
    )
    return respond(request, f"Block {height}", main, page="block")


def _prev_link(height: int, prev_hash: str) -> Markup:
    if height == 1:
        return join(["the genesis ", tag("code", short(prev_hash))])
    return join(
        [link(block_url(height - 1), f"block {height - 1}"), " ", tag("code", short(prev_hash))]
    )


def _prev_next(height: int, tip: int) -> Markup:
    parts = []
    if height > 1:
        parts.append(link(block_url(height - 1), f"← block {height - 1}", rel="prev"))
    if height < tip:
        parts.append(link(block_url(height + 1), f"block {height + 1} →", rel="next"))
    return join(parts)


def _block_txs(
    node: Node, height: int, start: int, total: int, txs: list[SignedTx], page_no: int
) -> Markup:
    if total == 0:
        return notice("No transactions in this block.")
    if not txs:
        return notice(f"This block has {total} transactions; page {page_no} is past the last.")
    decimals = views.get_decimals(node.store)
    rows = [
        (
            str(start + i),
            hash_link(tx_url(tx.hash.hex()), tx.hash.hex()),
            account_link(tx.body.signer),
            _tx_words(tx, decimals),
        )
        for i, tx in enumerate(txs)
    ]
    parts = [table(("#", "tx", "signer", "what"), rows)]
    if total > TXS_PAGE:
        shown = f"Transactions {start + 1}-{start + len(txs)} of {total}."
        nav = []
        if page_no > 1:
            nav.append(link(with_query(block_url(height), {"page": page_no - 1}), "Previous"))
        if start + len(txs) < total:
            nav.append(link(with_query(block_url(height), {"page": page_no + 1}), "Next"))
        parts += [tag("p", shown), tag("nav", *nav, class_="pager")]
    return join(parts)


def _signatures(node: Node, height: int) -> Markup:
    signers = commit_signers(node, height)
    commit = chain.get_commit(node.store, height)
    if commit is None:
        return notice("This node holds no commit certificate for this block.")
    rows = [
        (
            name,
            badge("signed", "ok") if sig else badge("did not sign", "bad"),
            tag("code", short(sig.hex())) if sig else "-",
            tag("code", short(key.hex())),
        )
        for name, key, sig in signers
    ]
    count = sum(1 for _, _, sig in signers if sig)
    summary = tag("p", f"{count} of {len(signers)} validators signed, in round {commit.round}.")
    return join([summary, table(("validator", "commit", "signature", "public key"), rows)])


def _rejected_here(node: Node, height: int) -> Markup:
    rejected = node.mempool.rejections_at(height, TXS_PAGE)
    if not rejected:
        return Markup("")
    rows = [(hash_link(tx_url(h.hex()), h.hex()), code, message) for h, code, message in rejected]
    note = tag(
        "p", "Transactions this node found failing at this height (they are not in the block)."
    )
    return section("Rejected at this height", note, table(("tx", "reason", "what failed"), rows))


# ---------------------------------------------------------------------------------------
# Transactions.


def resolve_tx(node: Node, ref: str) -> bytes:
    text = ref.strip().lower()
    if HEX_RE.fullmatch(text) is None:
        raise PageError(
            400,
            "Not a transaction hash",
            f"{ref!r} is not a transaction hash "
            f"(64 hex digits, or a unique prefix of {MIN_PREFIX} or more)",
        )
    found = find_tx_hashes(node, text)
    if not found:
        raise PageError(
            404,
            "No such transaction",
            f"this node knows no transaction with a hash starting {text}",
        )
    if len(found) > 1:
        choices = join(tag("li", hash_link(tx_url(h.hex()), h.hex())) for h in found[:MAX_MATCHES])
        raise PageError(
            409,
            "Several transactions match",
            f"{text} starts the hash of several transactions",
            tag("ul", choices),
        )
    return found[0]


@html_page
async def tx_page(request: web.Request) -> web.Response:
    node = _node(request)
    tx_hash = resolve_tx(node, request.match_info["hash"])
    status = node.tx_status(tx_hash)
    if status is None:
        raise PageError(
            404, "No such transaction", f"this node knows no transaction {tx_hash.hex()}"
        )
    tx: SignedTx | None = None
    rows: list[tuple[str, object]] = [
        ("Hash", tag("code", tx_hash.hex())),
        ("Status", _status_badge(status)),
    ]
    if status["status"] == "committed":
        found = chain.get_tx(node.store, tx_hash)
        tx = found[0] if found else None
        header = chain.get_block_header(node.store, status["height"])
        rows.append(
            (
                "Block",
                join(
                    [
                        link(block_url(status["height"]), f"block {status['height']}"),
                        f", position {status['position']}",
                    ]
                ),
            )
        )
        rows.append(("Committed at", time_html(header.time_ms if header else None)))
    elif status["status"] == "pending":
        tx = node.mempool.get(tx_hash)
    else:
        rows.append(
            ("Reason", join([tag("code", status.get("error", "")), " ", status.get("message", "")]))
        )
    main = [fields(rows + (_tx_fields(node, tx) if tx else []))]
    if tx is not None:
        decimals = views.get_decimals(node.store)
        items = (
            tag("li", words_html(describe(c, tx.body.signer, decimals))) for c in tx.body.commands
        )
        main.append(section("What it does", tag("ol", *items, class_="commands")))
        main.append(section("Signatures", _tx_signatures(node, tx)))
    elif status["status"] == "rejected":
        main.append(
            notice("Nodes keep no body of a rejected transaction: its commands are not known here.")
        )
    return respond(request, "Transaction", join(main), page="tx")


def _status_badge(status: dict[str, Any]) -> Markup:
    kind = {"committed": "ok", "pending": "wait", "rejected": "bad"}.get(status["status"], "")
    return tag("span", badge(status["status"], kind), id="tx-status", data_status=status["status"])


def _tx_fields(node: Node, tx: SignedTx) -> list[tuple[str, object]]:
    body = tx.body
    memo: object = tag("span", body.memo, class_="memo") if body.memo else "-"
    return [
        ("Signer", account_link(body.signer)),
        ("Nonce", str(body.nonce)),
        ("Created at", time_html(body.created_at)),
        ("Memo", memo),
        ("Chain", body.chain_id),
    ]


def _tx_signatures(node: Node, tx: SignedTx) -> Markup:
    record = State(node.store).get_account(tx.body.signer)
    signer_key = record.public_key if record else b""
    rows = [
        (
            tag("code", s.public_key.hex()),
            f"{tx.body.signer}'s registered key" if s.public_key == signer_key else "another key",
        )
        for s in tx.signatures
    ]
    return table(("public key", "whose"), rows)


# ---------------------------------------------------------------------------------------
# Accounts.


@html_page
async def account_page(request: web.Request) -> web.Response:
    node = _node(request)
    raw = request.match_info["account"]
    account = raw.strip().lower()
    if not is_account_id(account):
        raise PageError(
            400, "Not an account id", f"{raw!r} is not an account id (name@bank, e.g. sokha@aba)"
        )
    if account != raw:
        raise web.HTTPFound(with_query(account_url(account), dict(request.query)))
    before = _before(request.query.get("before"))
    found = views.account_to_json(node.store, account)
    if found is None:
        raise PageError(404, "No such account", f"no account {account} on this chain")
    pending = len(node.mempool.pending_nonces(account))
    rows: list[tuple[str, object]] = [
        ("Account", account),
        ("Role", found["role"]),
        ("Frozen", badge("frozen", "bad") if found["frozen"] else "no"),
        ("Next nonce", str(found["nonce"])),
        ("Pending transactions", str(pending)),
        (
            "Key",
            tag("code", found["public_key"])
            if found["public_key"]
            else "none: custodial, its bank signs for it",
        ),
    ]
    balances = table(
        ("asset", "balance"),
        [
            (asset, tag("span", _group(value), class_="amount"))
            for asset, value in found["balances"].items()
        ],
    )
    main = join(
        [
            fields(rows),
            section("Balances", balances),
            section("History, newest first", _history(node, account, before)),
        ]
    )
    return respond(request, account, main, page="account")


def _before(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = _BEFORE_RE.fullmatch(text)
    if match is None or int(match.group(1)) > MAX_UINT or int(match.group(2)) > 2**32 - 1:
        raise PageError(400, "Bad request", f"before must be HEIGHT:POSITION, not {text!r}")
    return int(match.group(1)), int(match.group(2))


def _history(node: Node, account: str, before: tuple[int, int] | None) -> Markup:
    page_items = chain.get_account_history(node.store, account, HISTORY_PAGE + 1, before)
    shown = page_items[:HISTORY_PAGE]
    if not shown:
        return notice("No transactions older than that." if before else "No transactions yet.")
    decimals = views.get_decimals(node.store)
    times: dict[int, int | None] = {}
    rows = []
    for height, _position, tx_hash in shown:
        if height not in times:
            header = chain.get_block_header(node.store, height)
            times[height] = header.time_ms if header else None
        found = chain.get_tx(node.store, tx_hash)
        what = _tx_words(found[0], decimals) if found else Markup("-")
        memo = found[0].body.memo if found else ""
        rows.append(
            (
                link(block_url(height), str(height)),
                time_html(times[height]),
                hash_link(tx_url(tx_hash.hex()), tx_hash.hex()),
                what,
                tag("span", memo, class_="memo") if memo else "",
            )
        )
    nav = []
    if before is not None:
        nav.append(link(account_url(account), "Newest"))
    if len(page_items) > HISTORY_PAGE:
        last = shown[-1]
        nav.append(
            link(with_query(account_url(account), {"before": f"{last[0]}:{last[1]}"}), "Older")
        )
    return join(
        [table(("block", "time", "tx", "what", "memo"), rows), tag("nav", *nav, class_="pager")]
    )


# ---------------------------------------------------------------------------------------
# Search.


@html_page
async def search(request: web.Request) -> web.Response:
    node = _node(request)
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
    if query.startswith("000201"):
        return with_query("/khqr", {"qr": query})
    if "@" in text:
        return account_url(text) if is_account_id(text) else []
    if _DIGITS_RE.fullmatch(text) and (len(text) < MIN_PREFIX or int(text) <= node.engine.height):
        return block_url(int(text))
    if HEX_RE.fullmatch(text) is None:
        return []
    matches: list[tuple[str, str]] = []
    if is_khqr_md5(text) and chain.get_payments(node.store, text, 1):
        matches.append((with_query("/khqr", {"md5": text}), f"the KHQR code with md5 {text}"))
    matches += [(tx_url(h.hex()), f"transaction {h.hex()}") for h in find_tx_hashes(node, text)]
    matches += [(block_url(h), f"block {h}") for h in find_block_heights(node, text)]
    if _DIGITS_RE.fullmatch(text) and not matches:
        return block_url(int(text))  # a height beyond the tip: its page says so
    return matches[0][0] if len(matches) == 1 else matches


# ---------------------------------------------------------------------------------------
# KHQR codes.


@html_page
async def khqr_page(request: web.Request) -> web.Response:
    node = _node(request)
    qr, md5 = request.query.get("qr"), request.query.get("md5")
    if qr is None and md5 is None:
        return respond(request, "KHQR code", _khqr_form(), page="khqr")
    if qr is None:
        qr = _code_of_md5(node, (md5 or "").strip().lower())
    try:
        code = decode_khqr(qr)
    except KHQRError as exc:
        raise PageError(
            400, "Not a KHQR code", f"this is not a valid KHQR code: {exc.message}", _khqr_form(qr)
        ) from exc
    main = _khqr_body(node, code, qr)
    return respond(request, f"KHQR: {code.merchant_name}", main, page="khqr")


def _code_of_md5(node: Node, md5: str) -> str:
    """The code a payment carried: a code is known by its md5 once it is paid."""
    if not is_khqr_md5(md5):
        raise PageError(400, "Not a KHQR md5", "an md5 is 32 hex digits", _khqr_form())
    for location in chain.get_payments(node.store, md5, 1):
        payment = views.payment_to_json(node.store, location, views.get_decimals(node.store))
        if payment is not None and payment["khqr"]:
            return str(payment["khqr"])
    raise PageError(
        404,
        "No payment with this md5",
        f"no payment on this chain carries the KHQR "
        f"code with md5 {md5} yet; paste the code itself to see it",
        _khqr_form(),
    )


def _khqr_form(value: str = "") -> Markup:
    field = tag(
        "textarea",
        value,
        name="qr",
        rows=3,
        maxlength=MAX_QUERY,
        aria_label="KHQR code",
        placeholder="000201010212...",
    )
    return tag(
        "form",
        tag("p", "Paste a KHQR code to read it:"),
        field,
        tag("button", "Show", type="submit"),
        action="/khqr",
        method="get",
        class_="khqr-form",
    )


def _khqr_body(node: Node, code: KHQR, qr: str) -> Markup:
    md5 = khqr_md5(qr)
    now = node.clock_ms()
    payments = _payments(node, md5)
    state = _code_state(code, payments, now)
    exists = State(node.store).get_account(code.account_id) is not None
    pay_to = join(
        [account_link(code.account_id), "" if exists else " (no such account on this chain)"]
    )
    rows: list[tuple[str, object]] = [
        (
            "Status",
            tag(
                "span",
                badge(state, _STATE_KINDS.get(state, "")),
                id="khqr-status",
                data_status=state,
                data_md5=md5,
                data_paid=len(payments),
            ),
        ),
        ("Pay to", pay_to),
        ("Kind", _code_kind(code)),
        (
            "Amount",
            amount_words(code.amount, code.currency, CURRENCY_DECIMALS)
            if code.amount is not None
            else "the payer chooses (static code)",
        ),
        ("Name", code.merchant_name),
        ("City", code.merchant_city),
    ]
    rows += _optional_fields(code)
    if code.created_ms is not None:
        rows.append(("Created", time_html(code.created_ms)))
    if code.expires_ms is not None:
        rows.append(
            ("Expires", join([time_html(code.expires_ms), " ", _countdown(code.expires_ms, now)]))
        )
    rows.append(("md5", tag("code", md5)))
    qr_box = tag("div", _qr_svg(qr), class_="qr")
    return join(
        [
            tag("div", qr_box, fields(rows), class_="khqr"),
            section("Payments", _payments_table(payments)),
            section("The code", tag("p", tag("code", qr, class_="wrap"))),
        ]
    )


_STATE_KINDS: Final = {"paid": "ok", "expired": "bad", "waiting for payment": "wait"}


def _code_state(code: KHQR, payments: list[dict[str, Any]], now: int) -> str:
    if code.is_dynamic:
        if payments:
            return "paid"
        return "expired" if is_expired(code, now) else "waiting for payment"
    return "static code: " + (f"{len(payments)} payment(s)" if payments else "no payment yet")


def _code_kind(code: KHQR) -> str:
    who = "a merchant" if code.is_merchant else "an individual"
    once = (
        "dynamic: one payment of this amount"
        if code.is_dynamic
        else "static: any amount, any number of payments"
    )
    return f"{who}'s code, {once}"


def _optional_fields(code: KHQR) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    alt = code.alternate_language
    if alt is not None:
        rows.append(
            (f"Name in {alt.language}", f"{alt.name}, {alt.city}" if alt.city else alt.name)
        )
    extra = code.additional
    named = [
        ("Merchant id", code.merchant_id),
        ("Acquiring bank", code.acquiring_bank),
        ("Account information", code.account_information),
        ("Bill number", extra.bill_number),
        ("Mobile number", extra.mobile_number),
        ("Store", extra.store_label),
        ("Terminal", extra.terminal_label),
        ("Purpose", extra.purpose),
        ("Merchant category", code.mcc),
        ("Country", code.country),
    ]
    return rows + [(k, v) for k, v in named if v]


def _countdown(expires_ms: int, now: int) -> Markup:
    left = expires_ms - now
    words = f"(in {_duration(left)})" if left > 0 else f"(expired {_duration(-left)} ago)"
    return tag("span", words, class_="countdown", data_expires=expires_ms, data_now=now)


def _duration(ms: int) -> str:
    """9 min 30 s, 2 h 5 min, 3 days 1 h."""
    seconds = max(0, ms // 1000)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days > 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    if minutes:
        return f"{minutes} min" + (f" {secs} s" if secs else "")
    return f"{secs} s"


def _payments(node: Node, md5: str) -> list[dict[str, Any]]:
    decimals = views.get_decimals(node.store)
    found = []
    for location in chain.get_payments(node.store, md5, PAYMENTS_SHOWN):
        payment = views.payment_to_json(node.store, location, decimals)
        if payment is not None:
            found.append(payment)
    return found


def _payments_table(payments: list[dict[str, Any]]) -> Markup:
    if not payments:
        return notice("No payment with this code yet.")
    rows = [
        (
            hash_link(tx_url(p["hash"]), p["hash"]),
            account_link(p["from"]),
            f"{_group(p['amount'])} {p['currency']}",
            link(block_url(p["height"]), str(p["height"])),
            time_html(p["time"]),
        )
        for p in payments
    ]
    return table(("tx", "from", "amount", "block", "time"), rows)


def _qr_svg(text: str) -> Markup:
    """The code drawn as SVG (paths only: nothing of the text is in the markup)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    out = io.BytesIO()
    image.save(out)
    svg = out.getvalue().decode()
    return Markup(svg[svg.index("<svg") :])


# ---------------------------------------------------------------------------------------


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
