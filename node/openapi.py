"""The Bakong Open API on every node, as NBC publishes it, so that merchant code and SDKs
written for `api-bakong.nbc.gov.kh` run against a local network unchanged.

Every answer is the Open API envelope `{"responseCode": 0|1, "responseMessage",
"errorCode": null|int, "data"}`. As at NBC, business outcomes (found, not found, unknown
or malformed account, static code, failed transaction) are HTTP 200 with the envelope
(SDKs treat any other status as a connection failure); a missing or bad token is 401
(`errorCode 6`), a malformed request 400 (`errorCode 5`). Transaction checks need
`Authorization: Bearer <token>`; `check_account_exist` and `generate_deeplink_by_qr` do
not. A payment's `amount` is a JSON number in major units (`12.5`), written exactly from
the ledger's integer minor units (this API's edge format; the node's own API keeps its
exact strings). The sandbox's registrations and tokens: `node.sandbox`.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import qrcode
import qrcode.image.svg
from aiohttp import web

from ledger import chain
from ledger.commands import Command, FxTransfer, Transfer
from ledger.ids import bank_of, format_amount, is_account_id
from ledger.khqr import KHQR, KHQRError, decode_khqr, format_khqr_amount, is_expired, khqr_md5
from ledger.references import is_khqr_md5
from ledger.state import State
from ledger.tx import SignedTx
from node.api import NODE
from node.runtime import Node
from node.sandbox import Deeplink, SandboxRefusal, normalize_email

log = logging.getLogger("bakong.openapi")

MAX_BODY_BYTES: Final = 64 * 1024
MAX_LIST: Final = 50
MAX_TEXT: Final = 128
MAX_URL: Final = 512
SHORT_HASH_HEX: Final = 8
# a short hash names at most this many committed txs before the amount narrows them down
MAX_SHORT_HASH_CANDIDATES: Final = 1000

# NBC's error codes.
NOT_FOUND: Final = 1
STATIC_QR: Final = 2
FAILED: Final = 3
DEEPLINK: Final = 4
MISSING_FIELDS: Final = 5
UNAUTHORIZED: Final = 6
UNAVAILABLE: Final = 9
NOT_REGISTERED: Final = 10
ACCOUNT_NOT_FOUND: Final = 11
ACCOUNT_INVALID: Final = 12

MESSAGES: Final = {
    NOT_FOUND: "Transaction could not be found. Please check and try again.",
    STATIC_QR: "Sorry, the system does not support static QR code.",
    FAILED: "Transaction failed.",
    DEEPLINK: "Error occurred on requesting deeplink from provider.",
    MISSING_FIELDS: "Missing required fields.",
    UNAUTHORIZED: "Unauthorized, not yet requested for token or code invalid.",
    UNAVAILABLE: "Cannot connect to server. Please try again later.",
    NOT_REGISTERED: "Not registered yet.",
    ACCOUNT_NOT_FOUND: "Account ID not found.",
    ACCOUNT_INVALID: "Account ID is invalid.",
}
FOUND_MESSAGE: Final = "Getting transaction successfully."
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]+")
_URL_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_UNSAFE_SCHEMES: Final = frozenset({"javascript", "data", "vbscript", "file", "blob"})


class OpenApiError(Exception):
    """An answer other than success: HTTP `status` with `error_code` in the envelope."""

    def __init__(self, error_code: int, message: str | None = None, status: int = 200) -> None:
        super().__init__(message or MESSAGES.get(error_code, "error"))
        self.error_code = error_code
        self.message = message or MESSAGES.get(error_code, "error")
        self.status = status


def _missing(what: str) -> OpenApiError:
    return OpenApiError(MISSING_FIELDS, f"Missing required fields: {what}.", 400)


# ---------------------------------------------------------------------------------------
# The envelope. Amounts are exact decimal numbers: json has no raw-number hook, so each
# is written as a marker string and the marker replaced by the digits afterwards.


class _Number(str):
    """A decimal number already written as JSON digits (only this module makes them)."""


_MARK: Final = "\u0000num:"


def _encode(obj: Any) -> Any:
    if isinstance(obj, _Number):
        return f"{_MARK}{obj}\u0000"
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_encode(v) for v in obj]
    return obj


_MARKED_RE: Final = re.compile(r'"\\u0000num:(-?[0-9]+(?:\.[0-9]+)?)\\u0000"')


def envelope(
    data: Any = None, error_code: int | None = None, message: str | None = None, status: int = 200
) -> web.Response:
    body = {
        "responseCode": 0 if error_code is None else 1,
        "responseMessage": message or (MESSAGES.get(error_code, "") if error_code else "Success"),
        "errorCode": error_code,
        "data": data,
    }
    text = _MARKED_RE.sub(lambda m: m.group(1), json.dumps(_encode(body)))
    return web.Response(text=text, status=status, content_type="application/json")


def major_units(amount: int, decimals: int) -> _Number:
    """Minor units as the shortest exact decimal number in major units (1250, 2 -> 12.5)."""
    text = format_amount(amount, decimals)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return _Number(text)


Handler = Callable[[web.Request], Awaitable[web.Response]]


def _open_api(handler: Handler) -> Handler:
    """Every refusal and every failure of `handler` as the envelope, never a traceback."""

    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except OpenApiError as exc:
            return envelope(None, exc.error_code, exc.message, exc.status)
        except SandboxRefusal as exc:
            status = 401 if exc.error_code == UNAUTHORIZED else 200
            return envelope(None, exc.error_code, exc.message, status)
        except web.HTTPRequestEntityTooLarge:
            return envelope(None, MISSING_FIELDS, "The request body is too large.", 400)
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            return envelope(None, UNAVAILABLE, None, 500)

    return wrapped


def _node(request: web.Request) -> Node:
    return request.app[NODE]


async def _body(request: web.Request) -> Any:
    """The JSON body (numbers with a fraction as Decimal, so amounts stay exact)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise OpenApiError(MISSING_FIELDS, "The request body is too large.", 400)
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise OpenApiError(MISSING_FIELDS, "The request body is too large.", 400)
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        raise OpenApiError(MISSING_FIELDS, "The request body is not valid JSON.", 400) from exc


async def _object(request: web.Request) -> dict[str, Any]:
    body = await _body(request)
    if not isinstance(body, dict):
        raise OpenApiError(MISSING_FIELDS, "The request body must be a JSON object.", 400)
    return body


def _text(body: dict[str, Any], name: str, limit: int = MAX_TEXT) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _missing(name)
    if len(value) > limit or not value.isprintable():
        raise OpenApiError(MISSING_FIELDS, f"{name} must be printable text of at most {limit} "
                           "characters.", 400)  # fmt: skip
    return value.strip()


def _check_token(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip().isascii():
        raise OpenApiError(UNAUTHORIZED, None, 401)
    if not _node(request).sandbox.is_token_valid(token.strip()):
        raise OpenApiError(UNAUTHORIZED, None, 401)


# ---------------------------------------------------------------------------------------
# Tokens.


@_open_api
async def request_token(request: web.Request) -> web.Response:
    """Register (sandbox: at once, no mail) and answer the first token. `data` also holds
    `verificationCode`, the code NBC would mail, which `/v1/verify` accepts once."""
    body = await _object(request)
    email = normalize_email(_text(body, "email", 254))
    if email is None:
        raise OpenApiError(MISSING_FIELDS, "email is not an email address.", 400)
    organization = _text(body, "organization")
    project = _text(body, "project")
    issued = _node(request).sandbox.register(email, organization, project)
    data = {"token": issued.token, "verificationCode": issued.code, "expiresMs": issued.expires_ms}
    return envelope(data, None, "Token has been issued (sandbox: no email is sent).")


@_open_api
async def verify(request: web.Request) -> web.Response:
    body = await _object(request)
    issued = _node(request).sandbox.verify(_text(body, "code"))
    return envelope({"token": issued.token, "expiresMs": issued.expires_ms})


@_open_api
async def renew_token(request: web.Request) -> web.Response:
    body = await _object(request)
    email = normalize_email(_text(body, "email", 254))
    if email is None:
        raise OpenApiError(NOT_REGISTERED)
    issued = _node(request).sandbox.renew(email)
    return envelope({"token": issued.token, "expiresMs": issued.expires_ms})


# ---------------------------------------------------------------------------------------
# Payments.


def _payment_command(tx: SignedTx, index: int | None = None) -> Transfer | FxTransfer | None:
    commands: tuple[Command, ...] = tx.body.commands
    if index is not None:
        cmd = commands[index] if index < len(commands) else None
        return cmd if isinstance(cmd, Transfer | FxTransfer) else None
    return next((c for c in commands if isinstance(c, Transfer | FxTransfer)), None)


def payment_data(
    node: Node, tx: SignedTx, cmd: Transfer | FxTransfer, height: int
) -> dict[str, Any]:
    """A payment as NBC's checks answer it."""
    state = State(node.store)
    asset = state.get_asset(cmd.asset)
    header = chain.get_block_header(node.store, height)
    bank = state.get_bank(bank_of(cmd.to))
    return {
        "hash": tx.hash.hex(),
        "fromAccountId": cmd.from_,
        "toAccountId": cmd.to,
        "currency": cmd.asset,
        "amount": major_units(cmd.amount, asset.decimals if asset else 0),
        "description": tx.body.memo or None,
        "createdDateMs": tx.body.created_at,
        "acknowledgedDateMs": header.time_ms if header else None,
        "externalRef": cmd.reference or None,
        "instructionRef": cmd.reference or None,
        "md5": khqr_md5(cmd.khqr) if cmd.khqr else None,
        "trackingStatus": None,
        "receiverBank": bank.name if bank else bank_of(cmd.to),
        "receiverBankAccount": None,
    }


def _first_payment(
    node: Node, lookup_key: str
) -> tuple[SignedTx, Transfer | FxTransfer, int] | None:
    """The oldest committed payment indexed under `lookup_key` (an md5 or a reference)."""
    for location in chain.get_payments(node.store, lookup_key, 1):
        found = chain.get_tx(node.store, location.tx_hash)
        cmd = _payment_command(found[0], location.command) if found else None
        if found is not None and cmd is not None:
            return found[0], cmd, found[1]
    return None


def find_by_md5(node: Node, md5: str) -> dict[str, Any]:
    """The payment made with the code of `md5`, or OpenApiError (1 not found, 2 static)."""
    md5 = md5.lower()
    found = _first_payment(node, md5) if is_khqr_md5(md5) else None
    if found is None:
        raise OpenApiError(NOT_FOUND)
    tx, cmd, height = found
    if not decode_khqr(cmd.khqr).is_dynamic:
        raise OpenApiError(STATIC_QR)
    return payment_data(node, tx, cmd, height)


def find_by_hash(node: Node, text: str) -> dict[str, Any]:
    """The payment of the tx `text` (64 hex); 3 if that tx was rejected, else 1."""
    if len(text) != 64 or _HEX_RE.fullmatch(text) is None:
        raise OpenApiError(NOT_FOUND)
    tx_hash = bytes.fromhex(text)
    found = chain.get_tx(node.store, tx_hash)
    cmd = _payment_command(found[0]) if found else None
    if found is not None and cmd is not None:
        return payment_data(node, found[0], cmd, found[1])
    status = node.tx_status(tx_hash)
    if status is not None and status["status"] == "rejected":
        raise OpenApiError(FAILED)
    raise OpenApiError(NOT_FOUND)


def _list_item(key: str, value: str, find: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    try:
        data = find(value)
    except OpenApiError as exc:
        return {key: value, "status": "NOT_FOUND", "message": exc.message, "data": None}
    return {key: value, "status": "SUCCESS", "message": FOUND_MESSAGE, "data": data}


async def _string_list(request: web.Request, what: str) -> list[str]:
    body = await _body(request)
    if not isinstance(body, list) or not all(isinstance(v, str) for v in body):
        raise OpenApiError(MISSING_FIELDS, f"The body must be a JSON array of {what}s.", 400)
    if len(body) > MAX_LIST:
        raise OpenApiError(
            MISSING_FIELDS, f"At most {MAX_LIST} {what}s per request, not {len(body)}.", 400
        )
    return body


def _string_field(body: dict[str, Any], name: str, limit: int = MAX_URL) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _missing(name)
    if len(value) > limit:
        raise OpenApiError(NOT_FOUND)
    return value


@_open_api
async def check_by_md5(request: web.Request) -> web.Response:
    _check_token(request)
    body = await _object(request)
    return envelope(find_by_md5(_node(request), _string_field(body, "md5")), None, FOUND_MESSAGE)


@_open_api
async def check_by_md5_list(request: web.Request) -> web.Response:
    _check_token(request)
    node = _node(request)
    md5s = await _string_list(request, "md5")
    return envelope([_list_item("md5", m, lambda v: find_by_md5(node, v)) for m in md5s])


@_open_api
async def check_by_hash(request: web.Request) -> web.Response:
    _check_token(request)
    body = await _object(request)
    data = find_by_hash(_node(request), _string_field(body, "hash"))
    return envelope(data, None, FOUND_MESSAGE)


@_open_api
async def check_by_hash_list(request: web.Request) -> web.Response:
    _check_token(request)
    node = _node(request)
    hashes = await _string_list(request, "hash")
    return envelope([_list_item("hash", h, lambda v: find_by_hash(node, v)) for h in hashes])


def _amount_in_minor_units(value: Any, decimals: int) -> int | None:
    """A JSON number (int or exact Decimal) in major units -> minor units; None when it is
    not a positive number with at most `decimals` decimals."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    try:
        minor = Decimal(value).scaleb(decimals)
    except InvalidOperation:
        return None
    if not minor.is_finite() or minor <= 0 or minor != minor.to_integral_value():
        return None
    return int(minor)


@_open_api
async def check_by_short_hash(request: web.Request) -> web.Response:
    """The payment whose tx hash starts with `hash` (8 hex digits), of `amount` `currency`."""
    _check_token(request)
    node = _node(request)
    body = await _object(request)
    prefix = _string_field(body, "hash")
    currency = _string_field(body, "currency", 16).upper()
    if "amount" not in body:
        raise _missing("amount")
    asset = State(node.store).get_asset(currency)
    if len(prefix) != SHORT_HASH_HEX or _HEX_RE.fullmatch(prefix) is None or asset is None:
        raise OpenApiError(NOT_FOUND)
    amount = _amount_in_minor_units(body["amount"], asset.decimals)
    if amount is None:
        raise OpenApiError(NOT_FOUND)
    for tx_hash in chain.find_tx_hashes(
        node.store, bytes.fromhex(prefix), MAX_SHORT_HASH_CANDIDATES
    ):
        found = chain.get_tx(node.store, tx_hash)
        if found is None:
            continue
        for cmd in found[0].body.commands:
            if isinstance(cmd, Transfer | FxTransfer) and (cmd.asset, cmd.amount) == (
                currency,
                amount,
            ):
                return envelope(payment_data(node, found[0], cmd, found[1]), None, FOUND_MESSAGE)
    raise OpenApiError(NOT_FOUND)


@_open_api
async def check_by_reference(request: web.Request) -> web.Response:
    """The (first) committed payment whose free-form reference is `ref`."""
    _check_token(request)
    node = _node(request)
    body = await _object(request)
    ref = _string_field(body, "ref", 64)
    found = _first_payment(node, ref)
    if found is None or found[1].reference != ref:
        raise OpenApiError(NOT_FOUND)
    return envelope(payment_data(node, *found), None, FOUND_MESSAGE)


# ---------------------------------------------------------------------------------------
# Accounts and deeplinks.


@_open_api
async def check_account_exist(request: web.Request) -> web.Response:
    body = await _object(request)
    account = body.get("accountId")
    if account is None:
        raise _missing("accountId")
    if not isinstance(account, str) or not is_account_id(account):
        raise OpenApiError(ACCOUNT_INVALID)
    if State(_node(request).store).get_account(account) is None:
        raise OpenApiError(ACCOUNT_NOT_FOUND)
    return envelope(None, None, "Account ID exists.")


def _safe_url(value: Any, name: str) -> str | None:
    """An optional URL shown on the page: text, bounded, and not a script."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_URL or not value.isprintable():
        raise OpenApiError(DEEPLINK, f"sourceInfo.{name} must be a URL of at most {MAX_URL} "
                           "characters.")  # fmt: skip
    scheme = _URL_SCHEME_RE.match(value)
    if scheme is None or scheme.group(1).lower() in _UNSAFE_SCHEMES:
        raise OpenApiError(DEEPLINK, f"sourceInfo.{name} must be a URL with a safe scheme.")
    return value


@_open_api
async def generate_deeplink(request: web.Request) -> web.Response:
    """Keep the code and answer a short link on this node to a page that shows it and its
    payment status."""
    body = await _object(request)
    qr = body.get("qr")
    if not isinstance(qr, str) or not qr:
        raise _missing("qr")
    try:
        decode_khqr(qr)
    except KHQRError as exc:
        raise OpenApiError(DEEPLINK, f"The QR is not a valid KHQR code: {exc.message}") from exc
    info = body.get("sourceInfo") or {}
    if not isinstance(info, dict):
        raise OpenApiError(DEEPLINK, "sourceInfo must be an object.")
    name = info.get("appName")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_TEXT):
        raise OpenApiError(DEEPLINK, f"sourceInfo.appName must be text of at most {MAX_TEXT}.")
    link = Deeplink(
        qr,
        _safe_url(info.get("appIconUrl"), "appIconUrl"),
        name,
        _safe_url(info.get("appDeepLinkCallback"), "appDeepLinkCallback"),
    )
    link_id = _node(request).sandbox.add_link(link)
    return envelope({"shortLink": f"{request.url.origin()}/khqr/{link_id}"})


def _qr_svg(text: str) -> str:
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    out = io.BytesIO()
    image.save(out)
    svg = out.getvalue().decode()
    return svg[svg.index("<svg") :]


def _code_status(node: Node, code: KHQR, md5: str, now_ms: int) -> str:
    if code.is_dynamic:
        if chain.get_payments(node.store, md5, 1):
            return "paid"
        return "expired" if is_expired(code, now_ms) else "waiting for payment"
    count = len(chain.get_payments(node.store, md5, 100))
    return f"static code: {count}{'+' if count == 100 else ''} payment(s) so far"


async def deeplink_page(request: web.Request) -> web.Response:
    """The page a short link opens: the code drawn, its fields and its payment status.
    Everything shown is escaped; the page runs no script."""
    node = _node(request)
    link = node.sandbox.get_link(request.match_info["id"])
    if link is None:
        return _page("Link not found", "<p>No such link on this node (links are kept for "
                     "the most recent codes only).</p>", 404)  # fmt: skip
    try:
        code = decode_khqr(link.qr)
    except KHQRError:
        return _page("Not a KHQR code", "<p>This link holds no valid code.</p>", 404)
    md5 = khqr_md5(link.qr)
    esc = html.escape
    amount = format_khqr_amount(code.amount, code.currency) if code.amount else "any amount"
    rows = [
        ("Pay to", code.account_id),
        ("Merchant", f"{code.merchant_name}, {code.merchant_city}"),
        ("Amount", f"{amount} {code.currency}"),
        ("md5", md5),
        ("Status", _code_status(node, code, md5, node.clock_ms())),
    ]
    if code.expires_ms is not None:
        rows.append(("Expires (ms since epoch)", str(code.expires_ms)))
    if link.app_name:
        rows.append(("From app", link.app_name))
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    icon = f'<img alt="" width="48" src="{esc(link.app_icon_url)}">' if link.app_icon_url else ""
    back = (
        f'<p><a href="{esc(link.app_callback)}">Back to the app</a></p>'
        if link.app_callback
        else ""
    )
    body = (
        f"{icon}<div class=qr>{_qr_svg(link.qr)}</div><table>{table}</table>"
        f"<p><code>{esc(link.qr)}</code></p>{back}"
    )
    return _page(f"KHQR: {code.merchant_name}", body)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<meta http-equiv=refresh content="5">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;max-width:36rem;margin:1rem auto;padding:0 1rem}"
        ".qr svg{width:16rem;height:16rem}th{text-align:left;padding-right:1rem}"
        "code{word-break:break-all;font-size:.8rem}"
        f"</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    headers = {
        "Content-Security-Policy": "default-src 'none'; img-src http: https: data:; "
        "style-src 'unsafe-inline'",
        "X-Content-Type-Options": "nosniff",
    }
    return web.Response(text=text, status=status, content_type="text/html", headers=headers)


def add_routes(app: web.Application) -> None:
    post = app.router.add_post
    post("/v1/request_token", request_token)
    post("/v1/verify", verify)
    post("/v1/renew_token", renew_token)
    post("/v1/check_transaction_by_md5", check_by_md5)
    post("/v1/check_transaction_by_md5_list", check_by_md5_list)
    post("/v1/check_transaction_by_hash", check_by_hash)
    post("/v1/check_transaction_by_hash_list", check_by_hash_list)
    post("/v1/check_transaction_by_short_hash", check_by_short_hash)
    post("/v1/check_transaction_by_instruction_ref", check_by_reference)
    post("/v1/check_transaction_by_external_ref", check_by_reference)
    post("/v1/check_account_exist", check_account_exist)
    post("/v1/check_bakong_account", check_account_exist)
    post("/v1/generate_deeplink_by_qr", generate_deeplink)
    app.router.add_get("/khqr/{id}", deeplink_page)
