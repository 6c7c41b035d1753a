"""The explorer's pages of the chain: the network (home), the list of blocks and one
block with its txs, its commit signatures and what this node rejected at its height."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Final

from aiohttp import web

from ledger import chain
from ledger.tx import SignedTx
from node import views
from node.runtime import Node
from node.webchain import (
    HEX_RE,
    MAX_MATCHES,
    MIN_PREFIX,
    WINDOW_MS,
    BlockSummary,
    commit_signers,
    find_block_heights,
    latest_txs,
    network_status,
    read_block_txs,
    read_summary,
    tx_rate,
)
from node.webfeed import FEED
from node.webhtml import (
    Markup,
    account_link,
    badge,
    block_url,
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
)
from node.webpage import (
    DIGITS_RE,
    PageError,
    empty_cell,
    html_page,
    node_of,
    page_uint,
    respond,
    tx_words,
)

LATEST: Final = 10
BLOCKS_PAGE: Final = 25
TXS_PAGE: Final = 100


@html_page
async def home(request: web.Request) -> web.Response:
    node, feed = node_of(request), request.app[FEED]
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
            (v["name"], badge("signed", "ok") if v["signed"] else badge("not in the commit", "bad"))
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
        rows = [(empty_cell("no blocks yet: the chain is at its genesis"),)]
    return table(("height", "hash", "time", "proposer", "txs"), rows, body_id=body_id)


def _latest_txs_table(node: Node, tip: int) -> Markup:
    decimals = views.get_decimals(node.store)
    rows: list[Sequence[object]] = [
        (
            hash_link(tx_url(tx.hash.hex()), tx.hash.hex()),
            link(block_url(h), str(h)),
            tx_words(tx, decimals),
        )
        for tx, h, _ in latest_txs(node, tip, LATEST)
    ]
    if not rows:
        rows = [(empty_cell("no transactions yet"),)]
    return table(("tx", "block", "what"), rows, body_id="txs")


@html_page
async def blocks_list(request: web.Request) -> web.Response:
    node = node_of(request)
    tip = node.engine.height
    before = request.query.get("before")
    top = min(tip, page_uint("before", before) - 1) if before is not None else tip
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
    if DIGITS_RE.fullmatch(text) is not None:
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
    node = node_of(request)
    height = resolve_block(node, request.match_info["ref"])
    block = chain.get_block_header(node.store, height)
    if block is None:
        raise PageError(404, f"No block {height} yet", f"no block {height} yet")
    tip = node.engine.height
    page_no = page_uint("page", request.query.get("page", "1"), 10**9) or 1
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
    """The previous block and the hash this one names (the genesis' for block 1)."""
    hash_code = tag("code", prev_hash)
    if height == 1:
        return join(["the genesis: ", hash_code])
    return join([link(block_url(height - 1), f"block {height - 1}"), ": ", hash_code])


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
            tx_words(tx, decimals),
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
            badge("signed", "ok") if sig else badge("not in the commit", "bad"),
            tag("code", short(sig.hex())) if sig else "-",
            tag("code", short(key.hex())),
        )
        for name, key, sig in signers
    ]
    count = sum(1 for _, _, sig in signers if sig)
    summary = tag(
        "p",
        f"{count} of {len(signers)} validators signed, in round {commit.round} (a commit "
        "carries the first 2f+1 signatures: one not in it may still have voted).",
    )
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
