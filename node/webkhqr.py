"""The explorer's KHQR page: a code's fields in words, the code drawn, its expiry and
whether (and by which txs) it was paid. A code is given whole (`?qr=`) or by the md5 of
a paid one (`?md5=`: the payment carries the code)."""

from __future__ import annotations

import functools
import io
from typing import Any, Final

import qrcode
import qrcode.image.svg
from aiohttp import web

from ledger import chain
from ledger.khqr import CURRENCY_DECIMALS, KHQR, KHQRError, decode_khqr, is_expired, khqr_md5
from ledger.references import is_khqr_md5
from ledger.state import State
from node import views
from node.runtime import Node
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
    table,
    tag,
    time_html,
    tx_url,
)
from node.webpage import MAX_QUERY, PageError, group_amount, html_page, node_of, respond
from node.webwords import amount_words

PAYMENTS_SHOWN: Final = 20
QR_CACHE: Final = 64


@html_page
async def khqr_page(request: web.Request) -> web.Response:
    node = node_of(request)
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
            f"{group_amount(p['amount'])} {p['currency']}",
            link(block_url(p["height"]), str(p["height"])),
            time_html(p["time"]),
        )
        for p in payments
    ]
    return table(("tx", "from", "amount", "block", "time"), rows)


@functools.lru_cache(maxsize=QR_CACHE)
def _qr_svg(text: str) -> Markup:
    """The code drawn as SVG (paths only: nothing of the text is in the markup). Drawing
    takes tens of milliseconds, and a code's page reloads when it is paid: the last
    drawings are kept."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    out = io.BytesIO()
    image.save(out)
    svg = out.getvalue().decode()
    return Markup(svg[svg.index("<svg") :])
