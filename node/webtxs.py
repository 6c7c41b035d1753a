"""The explorer's pages of a transaction (status, commands in words, signatures) and of
an account (balances, role, history newest first, a page at a time)."""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from ledger import chain
from ledger.ids import is_account_id
from ledger.state import State
from ledger.tx import SignedTx
from node import views
from node.runtime import Node
from node.webchain import (
    HEX_RE,
    MAX_MATCHES,
    MIN_PREFIX,
    find_tx_hashes,
)
from node.webhtml import (
    Markup,
    account_link,
    account_url,
    badge,
    block_url,
    fields,
    hash_link,
    join,
    link,
    notice,
    section,
    table,
    tag,
    time_html,
    tx_url,
    with_query,
    words_html,
)
from node.webpage import MAX_UINT, PageError, group_amount, html_page, node_of, respond, tx_words
from node.webwords import describe

HISTORY_PAGE: Final = 20
_BEFORE_RE: Final = re.compile(r"([0-9]{1,19}):([0-9]{1,10})")


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
    node = node_of(request)
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


@html_page
async def account_page(request: web.Request) -> web.Response:
    node = node_of(request)
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
            (asset, tag("span", group_amount(value), class_="amount"))
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
        what = tx_words(found[0], decimals) if found else Markup("-")
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
