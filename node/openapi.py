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
import secrets
from collections.abc import Awaitable, Callable
from decimal import Decimal, DecimalException, localcontext
from typing import Any, Final

import qrcode
import qrcode.image.svg
from aiohttp import web

from ledger import chain
from ledger.commands import MAX_REFERENCE_BYTES, Command, FxTransfer, Transfer
from ledger.constants import MAX_AMOUNT
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
_UNSAFE_SCHEMES: Final = frozenset(
    {"javascript", "data", "vbscript", "file", "blob", "about", "view-source", "filesystem",
     "search-ms", "shell", "ftp", "intent", "chrome", "resource", "jar"}
)  # fmt: skip


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
# is written as a marker string and the marker replaced by its digits afterwards. The
# marker is random per answer, so no text a payer chose (a memo, a reference) can pose
# as one.


class _Number(str):
    """A decimal number already written as JSON digits (only this module makes them)."""


def _encode(obj: Any, mark: str) -> Any:
    if isinstance(obj, _Number):
        return f"{mark}{obj}"
    if isinstance(obj, dict):
        return {k: _encode(v, mark) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_encode(v, mark) for v in obj]
    return obj


def envelope(
    data: Any = None, error_code: int | None = None, message: str | None = None, status: int = 200
) -> web.Response:
    body = {
        "responseCode": 0 if error_code is None else 1,
        "responseMessage": message or (MESSAGES.get(error_code, "") if error_code else "Success"),
        "errorCode": error_code,
        "data": data,
    }
    mark = f"num-{secrets.token_hex(16)}:"
    numbers = re.compile(f'"{mark}(-?[0-9]+(?:\\.[0-9]+)?)"')
    text = numbers.sub(lambda m: m.group(1), json.dumps(_encode(body, mark)))
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
    if not _is_text(value, limit):
        raise OpenApiError(MISSING_FIELDS, f"{name} must be printable text of at most {limit} "
                           "bytes.", 400)  # fmt: skip
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


def _is_text(value: str, max_bytes: int) -> bool:
    """Printable text of at most `max_bytes` UTF-8 bytes (a lone surrogate is not)."""
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        return False
    return size <= max_bytes and value.isprintable()


def _string_field(body: dict[str, Any], name: str, limit: int = MAX_URL) -> str:
    """A required string; one that cannot be a hash, md5 or reference finds nothing."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _missing(name)
    if not _is_text(value, limit):
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


MAX_AMOUNT_DIGITS: Final = 30


def _amount_in_minor_units(value: Any, decimals: int) -> int | None:
    """A JSON number (int or exact Decimal) in major units -> minor units; None when it is
    not a positive number with at most `decimals` decimals. Its size is bounded before
    any arithmetic: `1e700000` costs nothing (its conversion to int would take seconds)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    if isinstance(value, int):
        return value * 10**decimals if 0 < value <= MAX_AMOUNT else None
    if not value.is_finite() or value <= 0:
        return None
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or len(digits) > MAX_AMOUNT_DIGITS:
        return None
    if not -MAX_AMOUNT_DIGITS <= exponent <= MAX_AMOUNT_DIGITS:
        return None
    try:
        with localcontext() as context:
            context.prec = 2 * MAX_AMOUNT_DIGITS + decimals
            minor = value.scaleb(decimals)
            if minor != minor.to_integral_value():
                return None
            result = int(minor)
    except DecimalException:
        return None
    return result if result <= MAX_AMOUNT else None


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
    for tx_hash in chain.find_tx_hashes(node.store, prefix.lower(), MAX_SHORT_HASH_CANDIDATES):
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
    ref = _string_field(body, "ref", MAX_REFERENCE_BYTES)
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


def _safe_url(value: Any, name: str, web_only: bool) -> str | None:
    """An optional URL shown on the page: text, bounded, and not a script (`web_only`:
    http or https only, for images)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _is_text(value, MAX_URL) or " " in value:
        raise OpenApiError(DEEPLINK, f"sourceInfo.{name} must be a URL of at most {MAX_URL} "
                           "bytes.")  # fmt: skip
    scheme = _URL_SCHEME_RE.match(value)
    name_of = scheme.group(1).lower() if scheme else ""
    allowed = name_of in ("http", "https") if web_only else _is_app_scheme(name_of)
    if not allowed:
        raise OpenApiError(DEEPLINK, f"sourceInfo.{name} must be a URL with a safe scheme.")
    return value


def _is_app_scheme(scheme: str) -> bool:
    """A web URL or an app's own scheme (`myshop://...`), never one that runs something in
    the browser or the operating system."""
    if scheme in ("http", "https"):
        return True
    return bool(scheme) and scheme not in _UNSAFE_SCHEMES and not scheme.startswith("ms-")


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
    if name is not None and (not isinstance(name, str) or not _is_text(name, MAX_TEXT)):
        raise OpenApiError(DEEPLINK, f"sourceInfo.appName must be text of at most {MAX_TEXT} "
                           "bytes.")  # fmt: skip
    link = Deeplink(
        qr,
        _safe_url(info.get("appIconUrl"), "appIconUrl", web_only=True),
        name,
        _safe_url(info.get("appDeepLinkCallback"), "appDeepLinkCallback", web_only=False),
    )
    node = _node(request)
    link_id = node.sandbox.add_link(link)
    return envelope({"shortLink": f"{_public_origin(node, request)}/khqr/{link_id}"})


_HOST_RE: Final = re.compile(
    r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?"
)


def _public_origin(node: Node, request: web.Request) -> str:
    """This node's own address, as configured; only a node bound to every address
    (0.0.0.0, ::) uses the request's Host, and only a well-formed one."""
    host = node.config.http.host
    if host not in ("0.0.0.0", "::", ""):
        return node.config.http_url
    scheme = "https" if node.config.http.tls else "http"
    claimed = request.headers.get("Host", "")
    if _HOST_RE.fullmatch(claimed) is None:
        return f"{scheme}://127.0.0.1:{node.config.http.port}"
    return f"{scheme}://{claimed}"


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
        f'<p><a rel="noreferrer" href="{esc(link.app_callback)}">Back to the app</a></p>'
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
