"""The HTTP API of a node (the contract in DESIGN.md), served by aiohttp.

Errors are always `{"error": {"code", "message"}}` with a 4xx status and a stable code;
nothing a client sends can produce a traceback or take the node down.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ledger import chain
from ledger.block import Block
from ledger.codec import expect_bytes, expect_list_max, unpack
from ledger.commands import MAX_REFERENCE_BYTES, Transfer
from ledger.errors import LedgerError
from ledger.fx import get_published_rates
from ledger.ids import bank_of, is_account_id, is_bank_code, parse_amount
from ledger.references import get_lookup_key, is_khqr_md5
from ledger.state import State
from ledger.tx import TxBody, sign_tx
from node import metrics as metrics_mod
from node import views
from node.mempool import MempoolError
from node.runtime import Node

log = logging.getLogger("bakong.api")

NODE: web.AppKey[Node] = web.AppKey("node", Node)
MAX_WAIT_MS = 60_000
MAX_LIST = 1000


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except MempoolError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except LedgerError as exc:
        return error_response(400, exc.code, exc.message)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "too_large", "request body is too large")
    except web.HTTPException as exc:
        if exc.status >= 400:
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
            return error_response(exc.status, code, exc.reason)
        raise
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; see the node log")


def _node(request: web.Request) -> Node:
    return request.app[NODE]


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ApiError(400, "bad_parameter", f"{name} must be an integer in [{lo}, {hi}]")
    return int(raw)


def _hash_param(text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise ApiError(400, "bad_hash", "expected a 64-character hex hash")
    return value


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", "request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "expected a JSON object")
    return body


async def _raw_tx(request: web.Request) -> bytes:
    if request.content_type == "application/msgpack":
        return await request.read()
    body = await _json_body(request)
    tx_hex = body.get("tx")
    if not isinstance(tx_hex, str):
        raise ApiError(400, "bad_request", 'expected {"tx": "<hex>"}')
    try:
        return bytes.fromhex(tx_hex)
    except ValueError as exc:
        raise ApiError(400, "bad_hex", "tx is not valid hex") from exc


# Handlers.
async def get_status(request: web.Request) -> web.Response:
    return web.json_response(_node(request).status())


async def post_transaction(request: web.Request) -> web.Response:
    raw = await _raw_tx(request)
    tx_hash = _node(request).submit_tx(raw)
    return web.json_response({"hash": tx_hash.hex()}, status=202)


async def post_transaction_batch(request: web.Request) -> web.Response:
    if request.content_type == "application/msgpack":
        items = expect_list_max(unpack(await request.read()), 10_000, "batch")
        raws = [expect_bytes(item, None, "tx") for item in items]
    else:
        body = await _json_body(request)
        txs = body.get("txs")
        if not isinstance(txs, list) or len(txs) > 10_000:
            raise ApiError(400, "bad_request", 'expected {"txs": ["<hex>", ...]} (<= 10000)')
        try:
            raws = [bytes.fromhex(t) for t in txs]
        except (ValueError, TypeError) as exc:
            raise ApiError(400, "bad_hex", "every tx must be hex") from exc
    return web.json_response({"results": await _node(request).submit_many(raws)})


async def get_transaction(request: web.Request) -> web.Response:
    node = _node(request)
    tx_hash = _hash_param(request.match_info["hash"])
    wait_ms = _int_param(request, "wait_ms", 0, 0, MAX_WAIT_MS)
    status = await node.wait_tx(tx_hash, wait_ms / 1000)
    if status is None:
        raise ApiError(404, "not_found", "no such transaction")
    tx = None
    if status["status"] == "committed":
        found = chain.get_tx(node.store, tx_hash)
        tx = found[0] if found else None
    elif status["status"] == "pending":
        tx = node.mempool.get(tx_hash)
    if tx is not None:
        status["tx"] = views.tx_to_json(tx, views.get_decimals(node.store))
    return web.json_response(status)


def _reference_query(request: web.Request) -> tuple[str, str | None]:
    """(lookup key, exact reference or None) from ?khqr_md5= or ?reference=."""
    md5, reference = request.query.get("khqr_md5"), request.query.get("reference")
    if (md5 is None) == (reference is None):
        raise ApiError(400, "bad_parameter", "give exactly one of khqr_md5 and reference")
    if md5 is not None:
        if not is_khqr_md5(md5.lower()):
            raise ApiError(400, "bad_md5", "khqr_md5 must be 32 hex digits")
        return md5.lower(), None
    if not reference or len(reference.encode()) > MAX_REFERENCE_BYTES:
        raise ApiError(400, "bad_parameter", f"reference must be 1-{MAX_REFERENCE_BYTES} bytes")
    return get_lookup_key(reference), reference


async def find_transactions(request: web.Request) -> web.Response:
    """Committed payments by reference, oldest first: ?khqr_md5=M finds every payment of
    the KHQR code whose md5 is M (dynamic or static); ?reference=R those carrying exactly R."""
    node = _node(request)
    lookup, exact = _reference_query(request)
    limit = _int_param(request, "limit", 100, 1, MAX_LIST)
    decimals = views.get_decimals(node.store)
    found = []
    for location in chain.get_payments(node.store, lookup, limit):
        payment = views.payment_to_json(node.store, location, decimals)
        if payment is not None and exact in (None, payment["reference"]):
            found.append(payment)
    return web.json_response({"transactions": found})


async def get_fx_rates(request: web.Request) -> web.Response:
    """The exchange rates the central bank published, per cross-border operator."""
    node = _node(request)
    operator = request.query.get("operator", "")
    if operator and not is_bank_code(operator):
        raise ApiError(400, "invalid_id", f"bad bank code {operator!r}")
    decimals = views.get_decimals(node.store)
    rates = get_published_rates(node.store, operator)
    return web.json_response({"rates": [views.rate_to_json(r, decimals) for r in rates]})


def _names(node: Node, height: int) -> dict[bytes, str]:
    validators = node.engine.get_validators(max(1, height))
    return {v.public_key: v.name for v in validators.validators}


async def get_blocks(request: web.Request) -> web.Response:
    node = _node(request)
    tip = node.engine.height
    limit = _int_param(request, "limit", 20, 1, MAX_LIST)
    if "from" in request.query:
        start = _int_param(request, "from", 1, 1, 2**62)
        heights = range(start, min(tip, start + limit - 1) + 1)
    else:
        heights = range(tip, max(0, tip - limit), -1)
    blocks = []
    for height in heights:
        block = chain.get_block(node.store, height)
        if block is not None:
            blocks.append(views.header_to_json(block))
    return web.json_response({"height": tip, "blocks": blocks})


async def get_block(request: web.Request) -> web.Response:
    node = _node(request)
    ref = request.match_info["ref"]
    block: Block | None
    if ref.isdigit():
        block = chain.get_block(node.store, int(ref))
    else:
        block = chain.get_block_by_hash(node.store, _hash_param(ref))
    if block is None:
        raise ApiError(404, "not_found", f"no block {ref}")
    if request.query.get("view") == "hashes":
        # what a follower such as `bakong bench` needs, without rendering every tx
        hashes = [tx.hash.hex() for tx in block.txs]
        return web.json_response({"height": block.height, "tx_hashes": hashes})
    commit = chain.get_commit(node.store, block.height)
    decimals = views.get_decimals(node.store)
    return web.json_response(
        views.block_to_json(block, commit, decimals, _names(node, block.height))
    )


async def get_assets(request: web.Request) -> web.Response:
    """The assets and their decimals: what a client needs to turn "12.50" into minor units."""
    decimals = views.get_decimals(_node(request).store)
    assets = [{"code": code, "decimals": d} for code, d in sorted(decimals.items())]
    return web.json_response({"assets": assets})


def _account_param(request: web.Request) -> str:
    account = request.match_info["account"]
    if not is_account_id(account):
        raise ApiError(400, "invalid_id", f"bad account id {account!r}")
    return account


async def get_account(request: web.Request) -> web.Response:
    node = _node(request)
    account = _account_param(request)
    found = views.account_to_json(node.store, account)
    if found is None:
        raise ApiError(404, "unknown_account", f"account {account} does not exist")
    found["pending_nonces"] = node.mempool.pending_nonces(account)
    return web.json_response(found)


async def get_account_transactions(request: web.Request) -> web.Response:
    node = _node(request)
    account = _account_param(request)
    limit = _int_param(request, "limit", 20, 1, MAX_LIST)
    before = None
    if "before" in request.query:
        height_text, _, pos_text = request.query["before"].partition(":")
        if not (height_text.isdigit() and pos_text.isdigit()):
            raise ApiError(400, "bad_parameter", "before must be HEIGHT:POSITION")
        before = (int(height_text), int(pos_text))
    page = chain.get_account_history(node.store, account, limit, before)
    decimals = views.get_decimals(node.store)
    items = []
    for height, position, tx_hash in page:
        found = chain.get_tx(node.store, tx_hash)
        entry: dict[str, Any] = {"height": height, "position": position, "hash": tx_hash.hex()}
        if found is not None:
            entry["tx"] = views.tx_to_json(found[0], decimals)
        items.append(entry)
    next_before = f"{page[-1][0]}:{page[-1][1]}" if len(page) == limit else None
    return web.json_response({"account": account, "transactions": items, "next": next_before})


async def get_metrics(request: web.Request) -> web.Response:
    node = _node(request)
    text = metrics_mod.render(
        node.metrics,
        node=node.config.name,
        height=node.engine.height,
        round_=node.engine.round,
        mempool_size=len(node.mempool),
        peers=len(node.p2p.connected_peers()),
        rejections=node.mempool.rejections_by_code,
        p2p_counters=_p2p_counters(node),
        evidence=node.engine.evidence_count,
    )
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


def _p2p_counters(node: Node) -> dict[str, int]:
    c = node.p2p.counters
    out = {
        "frames_in": c.frames_in,
        "frames_out": c.frames_out,
        "sessions": c.sessions,
        "handler_errors": c.handler_errors,
    }
    for prefix, counter in (
        ("dropped", c.dropped),
        ("refused", c.refused),
        ("disconnect", c.disconnects),
    ):
        for code, n in counter.items():
            out[f"{prefix}_{code}"] = n
    out["dropped_malformed_consensus"] = node.engine.dropped_messages
    return out


async def post_bank_transfer(request: web.Request) -> web.Response:
    """The bank's back office pays for one of its custodial customers."""
    node = _node(request)
    token = node.config.api_token
    supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not token or not hmac.compare_digest(supplied.encode(), token.encode()):
        raise ApiError(401, "unauthorized", "a valid bearer token is required")
    if node.operator_key is None:
        raise ApiError(403, "no_operator_key", "this node holds no operator key")
    body = await _json_body(request)
    transfer = _parse_bank_transfer(node, body)
    operator = f"admin@{node.config.bank}"
    nonce = node.next_operator_nonce()
    memo = body.get("memo", "")
    if not isinstance(memo, str):
        raise ApiError(400, "bad_request", "memo must be a string")
    tx = sign_tx(
        TxBody(1, node.chain_id, operator, nonce, node.clock_ms(), (transfer,), memo),
        node.operator_key,
    )
    tx_hash = node.submit_tx(tx.encode())
    node.operator_nonce = nonce + 1
    wait_ms = body.get("wait_ms", 0)
    if not isinstance(wait_ms, int) or not 0 <= wait_ms <= MAX_WAIT_MS:
        raise ApiError(400, "bad_parameter", f"wait_ms must be an integer in [0, {MAX_WAIT_MS}]")
    status = await node.wait_tx(tx_hash, wait_ms / 1000)
    return web.json_response(status or {"hash": tx_hash.hex(), "status": "pending"}, status=202)


def _parse_bank_transfer(node: Node, body: dict[str, Any]) -> Transfer:
    fields = [body.get(k) for k in ("from", "to", "asset", "amount")]
    strings = [v for v in fields if isinstance(v, str)]
    if len(strings) != len(fields):
        raise ApiError(400, "bad_request", 'expected string fields "from", "to", "asset", "amount"')
    source, target, asset, amount = strings
    for account in (source, target):
        if not is_account_id(account):
            raise ApiError(400, "invalid_id", f"bad account id {account!r}")
    if bank_of(source) != node.config.bank:
        raise ApiError(403, "permission_denied", f"{source} is not a customer of this bank")
    record = State(node.store).get_asset(asset)
    if record is None:
        raise ApiError(400, "unknown_asset", f"unknown asset {asset!r}")
    reference = body.get("reference", "")
    if not isinstance(reference, str):
        raise ApiError(400, "bad_request", "reference must be a string")
    return Transfer(source, target, asset, parse_amount(amount, record.decimals), reference)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/status", get_status)
    app.router.add_post("/v1/transactions", post_transaction)
    app.router.add_get("/v1/transactions", find_transactions)
    app.router.add_post("/v1/transactions/batch", post_transaction_batch)
    app.router.add_get("/v1/transactions/{hash}", get_transaction)
    app.router.add_get("/v1/blocks", get_blocks)
    app.router.add_get("/v1/blocks/{ref}", get_block)
    app.router.add_get("/v1/assets", get_assets)
    app.router.add_get("/v1/fx/rates", get_fx_rates)
    app.router.add_get("/v1/accounts/{account}", get_account)
    app.router.add_get("/v1/accounts/{account}/transactions", get_account_transactions)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_post("/v1/bank/transfers", post_bank_transfer)
