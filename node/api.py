"""The HTTP API of a node (the contract in DESIGN.md), served by aiohttp.

Errors are always `{"error": {"code", "message"}}` with a 4xx status and a stable code;
nothing a client sends can produce a traceback or take the node down. Every number a
client sends (heights, limits, cursors, wait_ms) goes through `parse_uint`: ASCII digits
only, within the parameter's range, else 400 `bad_parameter` naming the parameter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ledger import chain
from ledger.block import Block
from ledger.codec import expect_bytes, expect_list_max, unpack
from ledger.commands import MAX_KHQR_BYTES, MAX_REFERENCE_BYTES, Transfer
from ledger.constants import MAX_MEMO_BYTES
from ledger.crypto import PrivateKey
from ledger.errors import LedgerError
from ledger.fx import get_published_rates
from ledger.ids import bank_of, is_account_id, is_bank_code, parse_amount
from ledger.references import check_payment_binding, is_khqr_md5
from ledger.state import State
from ledger.tx import SignedTx, TxBody, sign_tx
from node import metrics as metrics_mod
from node import views
from node.errors import NodeError
from node.idempotency import Record, is_idempotency_key
from node.mempool import MempoolError
from node.runtime import Node

log = logging.getLogger("bakong.api")

NODE: web.AppKey[Node] = web.AppKey("node", Node)
MAX_WAIT_MS = 60_000
MAX_LIST = 1000
MAX_UINT = 2**63 - 1
MAX_POSITION = 2**32 - 1  # a tx's position in its block is stored in 4 bytes
_UINT_RE = re.compile(r"[0-9]{1,19}")
_HASH_RE = re.compile(r"[0-9a-fA-F]{64}")
_PREFIX_RE = re.compile(r"[0-9a-fA-F]{8,64}")


class ApiError(NodeError):
    """A request refused with an HTTP `status`; answered as `{"error": {code, message}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code)
        self.status = status


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


def parse_uint(name: str, text: str, lo: int = 0, hi: int = MAX_UINT) -> int:
    """The one parser of client numbers: ASCII digits only (no sign, space, exponent or
    other scripts' digits), within [lo, hi] and never beyond 2**63-1."""
    hi = min(hi, MAX_UINT)
    if _UINT_RE.fullmatch(text) is None or not lo <= int(text) <= hi:
        raise ApiError(400, "bad_parameter", f"{name} must be an integer in [{lo}, {hi}]")
    return int(text)


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    return default if raw is None else parse_uint(name, raw, lo, hi)


def _hash_param(text: str) -> bytes:
    if _HASH_RE.fullmatch(text) is None:
        raise ApiError(400, "bad_hash", "expected a 64-character hex hash")
    return bytes.fromhex(text)


MIN_PREFIX = 8
MAX_REJECTED_SHOWN = 100
MAX_MATCHES_SHOWN = 10


def _resolve_prefix(text: str, matches: Callable[[str, int], list[bytes]], what: str) -> bytes:
    """The one hash that a hex prefix of 8-64 characters names: 404 `not_found` for none,
    409 `ambiguous_hash` listing the matches for several."""
    if _PREFIX_RE.fullmatch(text) is None:
        raise ApiError(
            400, "bad_hash", f"expected a hex hash or a prefix of at least {MIN_PREFIX} digits"
        )
    text = text.lower()
    if len(text) == 64:
        return bytes.fromhex(text)
    found = matches(text, MAX_MATCHES_SHOWN + 1)
    if not found:
        raise ApiError(404, "not_found", f"no {what} with a hash starting {text}")
    if len(found) > 1:
        shown = ", ".join(h.hex() for h in found[:MAX_MATCHES_SHOWN])
        more = " and more" if len(found) > MAX_MATCHES_SHOWN else ""
        raise ApiError(409, "ambiguous_hash", f"{text} names several {what}s: {shown}{more}")
    return found[0]


def _tx_matches(node: Node) -> Callable[[str, int], list[bytes]]:
    def matches(prefix: str, limit: int) -> list[bytes]:
        found = set(chain.find_tx_hashes(node.store, prefix, limit))
        found.update(node.mempool.find_hashes(prefix, limit))
        found.update(node.mempool.find_rejected(prefix, limit))
        return sorted(found)[:limit]

    return matches


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object. Read as bytes: a bogus charset in Content-Type, invalid
    UTF-8, an integer of thousands of digits or deep nesting is bad JSON, not a crash."""
    try:
        body = json.loads(await request.read())
    except (ValueError, RecursionError) as exc:
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
    """A tx by its hash or a unique prefix of it (at least 8 hex digits)."""
    node = _node(request)
    tx_hash = _resolve_prefix(request.match_info["hash"], _tx_matches(node), "transaction")
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
    return reference, reference


async def find_transactions(request: web.Request) -> web.Response:
    """Committed payments by reference, oldest first: ?khqr_md5=M finds every payment made
    with the KHQR code whose md5 is M (dynamic or static: the code is in the payment, so
    only payments it binds); ?reference=R those whose free-form reference is exactly R."""
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
    if request.query.get("view") == "hashes":
        # what a follower such as `bakong bench` needs, without decoding or rendering
        # every tx: a height the chain holds is read straight from the store
        height = int(ref) if len(ref) < MIN_PREFIX and _UINT_RE.fullmatch(ref) else None
        found = chain.get_block_tx_hashes(node.store, height) if height else None
        if height is None or found is None:
            height, found = _block_ref_hashes(node, ref)
        return web.json_response({"height": height, "tx_hashes": [h.hex() for h in found]})
    block = _find_block(node, ref)
    commit = chain.get_commit(node.store, block.height)
    decimals = views.get_decimals(node.store)
    out = views.block_to_json(block, commit, decimals, _names(node, block.height))
    # what this node found failing at this height (node-local: not part of the block)
    out["rejected"] = [
        {"hash": tx_hash.hex(), "error": code, "message": message}
        for tx_hash, code, message in node.mempool.rejections_at(block.height, MAX_REJECTED_SHOWN)
    ]
    return web.json_response(out)


def _block_ref_hashes(node: Node, ref: str) -> tuple[int, list[bytes]]:
    block = _find_block(node, ref)
    return block.height, [tx.hash for tx in block.txs]


def _find_block(node: Node, ref: str) -> Block:
    """A block by height (digits), hash, or a unique hash prefix of 8+ hex digits. Digits
    are a height (at most 2**63-1); only digits beyond the tip, 8 or more of them, are
    also tried as a hash prefix."""
    tip = chain.get_height(node.store)
    if ref.isdigit() and len(ref) < 64:
        height = parse_uint("height", ref)
        if height <= tip or len(ref) < MIN_PREFIX:
            return _block_at(node, height, tip)
        matches = chain.find_block_hashes(node.store, ref, MAX_MATCHES_SHOWN + 1)
        if not matches:
            return _block_at(node, height, tip)
    elif _PREFIX_RE.fullmatch(ref) is None:
        code = "bad_hash" if len(ref) == 64 else "bad_parameter"
        raise ApiError(400, code, f"expected a height, a hash or a hash prefix, got {ref!r}")
    block_hash = _resolve_prefix(
        ref, lambda prefix, limit: chain.find_block_hashes(node.store, prefix, limit), "block"
    )
    block = chain.get_block_by_hash(node.store, block_hash)
    if block is None:
        raise ApiError(404, "not_found", f"no block with hash {block_hash.hex()}")
    return block


def _block_at(node: Node, height: int, tip: int) -> Block:
    found = chain.get_block(node.store, height)
    if found is None:
        raise ApiError(404, "not_found", f"no block {height} yet; the chain is at {tip}")
    return found


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
        before = (
            parse_uint("before height", height_text),
            parse_uint("before position", pos_text, 0, MAX_POSITION),
        )
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
    if node.metrics_registry is None:
        node.metrics_registry = metrics_mod.make_registry(lambda: _metrics_snapshot(node))
    text = metrics_mod.render(node.metrics_registry)
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


def _metrics_snapshot(node: Node) -> metrics_mod.Snapshot:
    return metrics_mod.Snapshot(
        metrics=node.metrics,
        node=node.config.name,
        height=node.engine.height,
        round_=node.engine.round,
        mempool_size=len(node.mempool),
        peers=len(node.p2p.connected_peers()),
        rejections=node.mempool.rejections_by_code,
        p2p_counters=_p2p_counters(node),
        evidence=node.engine.evidence_count,
        mempool_queued=node.mempool.queued_count,
        labelled={
            "bakong_signature_checks_total": (
                "Txs whose signatures this node verified (inline), by where: on admission "
                "to the mempool, or while judging a block.",
                "where",
                {
                    "admission": node.mempool.verified.checks,
                    "block": node.engine.judge.checks,
                },
            ),
            "bakong_sync_replies_total": (
                "Block sync replies and timeouts, by verdict.",
                "verdict",
                node.engine.sync_verdicts,
            ),
            "bakong_next_height_dropped_total": (
                "Next-height messages not kept, by reason.",
                "reason",
                node.engine.dropped_future,
            ),
            "bakong_evidence_events_total": (
                "Evidence of equivocation: stored, duplicates, dropped because full.",
                "kind",
                node.engine.evidence.summary().to_json(),
            ),
        },
    )


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
    """The bank's back office pays for one of its custodial customers.

    Every field is checked before anything is signed, so a 400 never pays. With an
    `Idempotency-Key` header (printable ASCII, 1-255 characters) a retry of the same request
    (same from, to, asset, amount, memo, reference and khqr; wait_ms may differ) answers with the
    first tx and its status read again (header `Idempotent-Replayed: true`) and never signs
    again; the same key with another request is 409 `idempotency_conflict`. Keys survive a
    restart; the node keeps the 100,000 most recent (older ones are forgotten). A concurrent
    request with a key in use waits for the same tx: the key is recorded before any await.
    """
    node = _node(request)
    _check_bearer(node, request)
    operator_key = node.operator_key
    if operator_key is None:
        raise ApiError(403, "no_operator_key", "this node holds no operator key")
    key = _idempotency_key(request)
    order = _parse_bank_transfer(node, await _json_body(request))
    tx_hash, replayed, refusal = _pay_once(node, operator_key, key, order)
    status = refusal or await node.wait_tx(tx_hash, order.wait_ms / 1000)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return web.json_response(
        status or {"hash": tx_hash.hex(), "status": "pending", "height": None},
        status=202,
        headers=headers,
    )


def _check_bearer(node: Node, request: web.Request) -> None:
    token = node.config.api_token
    supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    # A header with bytes that are not UTF-8 arrives with surrogates: never a valid token.
    if not token or not supplied.isascii():
        raise ApiError(401, "unauthorized", "a valid bearer token is required")
    if not hmac.compare_digest(supplied.encode(), token.encode()):
        raise ApiError(401, "unauthorized", "a valid bearer token is required")


def _idempotency_key(request: web.Request) -> str | None:
    values = request.headers.getall("Idempotency-Key", [])
    if not values:
        return None
    if len(values) > 1 or not is_idempotency_key(values[0]):
        raise ApiError(
            400,
            "bad_idempotency_key",
            "Idempotency-Key must be one printable ASCII string of 1-255 characters",
        )
    return str(values[0])


@dataclass(frozen=True, slots=True)
class BankTransfer:
    """A checked back-office request: everything its tx needs but the nonce and the time."""

    transfer: Transfer
    memo: str
    wait_ms: int

    def digest(self) -> bytes:
        """sha256 of the canonical request: what is paid, in minor units (not wait_ms)."""
        t = self.transfer
        fields = [t.from_, t.to, t.asset, t.amount, t.reference, self.memo, t.khqr]
        return hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).digest()


_BANK_TRANSFER_FIELDS = ("from", "to", "asset", "amount", "memo", "reference", "khqr", "wait_ms")


def _parse_bank_transfer(node: Node, body: dict[str, Any]) -> BankTransfer:
    unknown = sorted(set(body) - set(_BANK_TRANSFER_FIELDS))
    if unknown:
        raise ApiError(
            400, "unknown_field", f"unknown field {unknown[0]!r}; expected {_BANK_TRANSFER_FIELDS}"
        )
    source, target = _account_field(body, "from"), _account_field(body, "to")
    if bank_of(source) != node.config.bank:
        raise ApiError(403, "permission_denied", f"{source} is not a customer of this bank")
    asset = _text_field(body, "asset", 16, None)
    record = State(node.store).get_asset(asset)
    if record is None:
        raise ApiError(400, "unknown_asset", f"unknown asset {asset!r}")
    amount = _amount_field(body, record.decimals)
    memo = _text_field(body, "memo", MAX_MEMO_BYTES, "")
    reference = _text_field(body, "reference", MAX_REFERENCE_BYTES, "")
    khqr = _text_field(body, "khqr", MAX_KHQR_BYTES, "")
    wait_ms = body.get("wait_ms", 0)
    if type(wait_ms) is not int or not 0 <= wait_ms <= MAX_WAIT_MS:
        raise ApiError(
            400, "bad_parameter", f"wait_ms must be a JSON integer in [0, {MAX_WAIT_MS}]"
        )
    # A KHQR code binds the payment (payee, asset, amount, expiry): checked before signing.
    try:
        check_payment_binding(target, asset, amount, reference, khqr, node.clock_ms())
    except LedgerError as exc:
        raise ApiError(400, exc.code, exc.message) from exc
    return BankTransfer(Transfer(source, target, asset, amount, reference, khqr), memo, wait_ms)


def _text_field(body: dict[str, Any], name: str, max_bytes: int, default: str | None) -> str:
    """A string field of at most `max_bytes` of UTF-8; required when `default` is None."""
    value = body.get(name, default)
    if not isinstance(value, str):
        need = "a string" if default is not None else "a string and is required"
        raise ApiError(400, "bad_request", f"{name} must be {need}")
    try:
        size = len(value.encode())
    except UnicodeEncodeError as exc:  # a lone surrogate such as "\ud800" in the JSON
        raise ApiError(400, "bad_request", f"{name} is not valid Unicode text") from exc
    if size > max_bytes:
        raise ApiError(400, "bad_request", f"{name} must be at most {max_bytes} UTF-8 bytes")
    return value


def _account_field(body: dict[str, Any], name: str) -> str:
    account = _text_field(body, name, 64, None)
    if not is_account_id(account):
        raise ApiError(400, "invalid_id", f"bad account id {account!r}")
    return account


def _amount_field(body: dict[str, Any], decimals: int) -> int:
    text = _text_field(body, "amount", 64, None)
    if not text.isascii():  # parse_amount's \d would take other scripts' digits
        raise ApiError(400, "invalid_amount", f"bad amount {text!r}: ASCII digits only")
    amount = parse_amount(text, decimals)
    if amount == 0:
        raise ApiError(400, "invalid_amount", "amount must be more than zero")
    return amount


def _pay_once(
    node: Node, operator_key: PrivateKey, key: str | None, order: BankTransfer
) -> tuple[bytes, bool, dict[str, Any] | None]:
    """(tx hash, replayed, refusal status): sign and submit `order` unless `key` already
    paid for it. Synchronous on purpose: no other request runs between the key's lookup
    and its record, so two requests with one key never both sign."""
    scope = f"admin@{node.config.bank}"
    if key is not None:
        found = node.idempotency.get(scope, key)
        if found is not None:
            if found.digest != order.digest():
                raise ApiError(
                    409, "idempotency_conflict", "this Idempotency-Key was used for another request"
                )
            return found.tx_hash, True, _resubmit_if_lost(node, found)
    tx = _sign(node, operator_key, order)
    raw = tx.encode()
    if key is not None:
        node.idempotency.put(scope, key, order.digest(), tx.hash, raw)
    try:
        node.submit_tx(raw)
    except MempoolError:
        if key is not None:  # nothing was admitted: a retry may sign again
            node.idempotency.discard(scope, key)
        raise
    return tx.hash, False, None


def _sign(node: Node, operator_key: PrivateKey, order: BankTransfer) -> SignedTx:
    body = TxBody(
        1,
        node.chain_id,
        f"admin@{node.config.bank}",
        node.next_operator_nonce(),
        node.clock_ms(),
        (order.transfer,),
        order.memo,
    )
    return sign_tx(body, operator_key)


def _resubmit_if_lost(node: Node, record: Record) -> dict[str, Any] | None:
    """A recorded tx this node no longer knows (a crash between record and submit, or a
    rejection long forgotten) goes in again: the same signed tx, so it pays at most once.
    Returns a rejected status if the mempool refuses it."""
    if node.tx_status(record.tx_hash) is not None:
        return None
    try:
        node.submit_tx(record.raw_tx)
    except MempoolError as exc:
        return {
            "hash": record.tx_hash.hex(),
            "status": "rejected",
            "height": None,
            "error": exc.code,
        }
    return None


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
