"""`bakong khqr new|decode`: make and read KHQR payment codes, the EMVCo merchant-presented
payload Bakong apps scan (see `ledger.khqr`). Neither command needs a node: a code is
just text, checked by its CRC; `bakong pay` is what pays one.
"""

from __future__ import annotations

import io
import json
import re
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Final

import click
import qrcode
from qrcode.image.pure import PyPNGImage

from cli.client import NodeClient, NodeReplyError
from cli.errors import CliError
from cli.human import format_local_time, group_amount, yes_no
from cli.options import home_option, json_option, node_option, user_errors
from ledger.ids import account_name, format_amount, parse_account_id, parse_amount
from ledger.khqr import (
    CURRENCY_DECIMALS,
    KHQR,
    AdditionalData,
    decode_khqr,
    encode_khqr,
    is_expired,
    khqr_md5,
)

DEFAULT_DYNAMIC_EXPIRY: Final = "10m"
CHECK_TIMEOUT_S: Final = 2.0
DEFAULT_CITY: Final = "Phnom Penh"
_DURATION: Final = re.compile(r"([0-9]{1,9})(ms|s|m|h|d)")
_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class KhqrCliError(CliError):
    code = "khqr_error"


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_duration_ms(text: str) -> int:
    """ "10m", "30s", "2h", "1d", "500ms" -> milliseconds (more than zero)."""
    match = _DURATION.fullmatch(text.strip())
    # a number and a unit
    if match is None:
        raise KhqrCliError(f"bad duration {text!r}: expected e.g. 30s, 10m, 2h, 1d", "bad_duration")
    # a code that expires as it is made can never be paid
    if int(match.group(1)) == 0:
        raise KhqrCliError(f"duration {text!r}: a code must live more than zero", "bad_duration")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def read_code_argument(text: str) -> str:
    """The code as given, or one line from stdin for '-' (codes hold spaces)."""
    return sys.stdin.readline().rstrip("\r\n") if text == "-" else text


def format_code_amount(code: KHQR) -> str | None:
    if code.amount is None:
        return None
    return format_amount(code.amount, CURRENCY_DECIMALS[code.currency])


def code_to_json(code: KHQR, text: str, at_ms: int) -> dict[str, Any]:
    """Every field of a decoded code, amounts as exact decimal strings; `md5` is the key
    Bakong looks its payment up by, `expired` is judged at `at_ms`."""
    out = asdict(code)
    out["amount"] = format_code_amount(code)
    out |= {"dynamic": code.is_dynamic, "md5": khqr_md5(text), "expired": is_expired(code, at_ms)}
    return {"qr": text} | out


def warn_if_unknown(account: str, home: Path, node_url: str | None) -> None:
    """A warning on stderr when a reachable node does not know `account`."""
    try:
        client = NodeClient(home, node_url, timeout=CHECK_TIMEOUT_S)
        client.get_account(account)
    except NodeReplyError as exc:
        if exc.code == "unknown_account":
            click.echo(
                f"warning: {account} does not exist on {client.url}: nobody can pay this "
                "code until the account is created (bakong account create)",
                err=True,
            )
    except CliError:
        pass  # no testnet, no node: the code is made offline


def render_terminal_qr(text: str) -> str:
    """The code as a QR drawn with Unicode half blocks (dark modules light, for dark
    terminals; scanners read either way round)."""
    qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(text.encode("utf-8"))
    qr.make(fit=True)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue()


def write_png(text: str, path: Path) -> None:
    qr = qrcode.QRCode(border=4, box_size=8, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(text.encode("utf-8"))
    qr.make(fit=True)
    with path.open("wb") as handle:
        qr.make_image(image_factory=PyPNGImage).save(handle)


@click.group("khqr")
def khqr_group() -> None:
    """Make and read KHQR payment codes (pay one with `bakong pay`)."""


def _build_code(account: str, amount: str | None, asset: str, extra: dict[str, Any]) -> KHQR:
    """The code's fields; timestamps are added by the caller."""
    account_id = parse_account_id(account)
    value = None
    if amount is not None:
        value = parse_amount(amount, CURRENCY_DECIMALS[asset])
        # a zero amount is not a payment request
        if value == 0:
            raise KhqrCliError("--amount must be more than zero", "invalid_amount")
    return KHQR(
        account_id=account_id,
        merchant_name=extra["name"] or account_name(account_id),
        merchant_city=extra["city"],
        currency=asset,
        amount=value,
        merchant_id=extra["merchant_id"],
        acquiring_bank=extra["acquiring_bank"],
        additional=AdditionalData(
            bill_number=extra["bill_number"],
            mobile_number=extra["mobile"],
            store_label=extra["store_label"],
            terminal_label=extra["terminal_label"],
            purpose=extra["purpose"],
        ),
    )


def _add_timestamps(code: KHQR, expires_in: str | None, at_ms: int) -> KHQR:
    """Dynamic codes always expire (default 10 minutes); static ones only when asked."""
    if expires_in is None and not code.is_dynamic:
        return code
    lifetime = parse_duration_ms(expires_in or DEFAULT_DYNAMIC_EXPIRY)
    return replace(code, created_ms=at_ms, expires_ms=at_ms + lifetime)


@khqr_group.command("new")
@click.argument("account")
@click.option(
    "--amount",
    help="Amount in the currency's units (KHR whole riel, USD up to 2 decimals). Makes a "
    "dynamic code, which pays once and expires; without it the code is static (the payer "
    "types the amount, and it may be paid many times).",
)
@click.option(
    "--asset",
    "--currency",
    "asset",
    type=click.Choice(sorted(CURRENCY_DECIMALS), case_sensitive=False),
    default="KHR",
    show_default=True,
    help="The code's currency.",
)
@click.option("--merchant-id", help="Makes a merchant code (tag 30); needs --acquiring-bank.")
@click.option("--acquiring-bank", help="The bank that acquires the payment, e.g. 'Wing Bank'.")
@click.option("--name", help="Merchant or person name (default: ACCOUNT's name), <= 25.")
@click.option("--city", default=DEFAULT_CITY, show_default=True, help="City, <= 15.")
@click.option("--bill-number", help="Bill or invoice number, <= 25.")
@click.option("--store-label", help="Store label, <= 25.")
@click.option("--terminal-label", help="Terminal label, <= 25.")
@click.option("--mobile", help="Mobile number, <= 25.")
@click.option("--purpose", help="Purpose of the payment, <= 25.")
@click.option(
    "--expires-in",
    metavar="DURATION",
    help="Lifetime such as 30s, 10m, 2h, 1d. Dynamic codes default to "
    f"{DEFAULT_DYNAMIC_EXPIRY}; static codes carry no expiry unless given.",
)
@click.option(
    "--png",
    type=click.Path(path_type=Path, dir_okay=False, writable=True),
    help="Also write the QR code as a PNG image to this file.",
)
@node_option
@json_option
@home_option
def new(
    account: str,
    amount: str | None,
    asset: str,
    expires_in: str | None,
    png: Path | None,
    as_json: bool,
    node_url: str | None,
    home: Path,
    **extra: Any,
) -> None:
    """Make a KHQR code paying ACCOUNT (name@bank): prints the code, then draws it.

    --json prints {"qr", "md5", "dynamic", "amount", "expires_ms", ...} and no drawing.
    The md5 is what `bakong tx find --md5` looks the payment up by. When a node of HOME's
    testnet (or --node) answers and does not know ACCOUNT, a warning says so: nobody can
    pay such a code until the account exists. Without a node the code is made all the same.
    """
    with user_errors():
        asset = asset.upper()
        at_ms = now_ms()
        code = _add_timestamps(_build_code(account, amount, asset, extra), expires_in, at_ms)
        text = encode_khqr(code)
        if png is not None:
            write_png(text, png)
    warn_if_unknown(code.account_id, home, node_url)
    if as_json:
        click.echo(json.dumps(code_to_json(code, text, at_ms)))
        return
    click.echo(text)
    click.echo(f"md5 {khqr_md5(text)}", err=True)
    click.echo(render_terminal_qr(text), nl=False)


@khqr_group.command("decode")
@click.argument("qr", metavar="QR|-")
@json_option
def decode(qr: str, as_json: bool) -> None:
    """Check a code's CRC and field rules and show what it asks for ('-': read stdin).

    An expired code is shown (with "expired": true), not refused; `bakong pay` refuses it.
    """
    with user_errors():
        text = read_code_argument(qr)
        code = decode_khqr(text)
    shape = code_to_json(code, text, now_ms())
    if as_json:
        click.echo(json.dumps(shape))
        return
    for key, value in _flatten(shape):
        click.echo(f"{key:<28} {_human(key, value, shape)}")


def _human(key: str, value: Any, shape: dict[str, Any]) -> str:
    """A decoded field for people: times local, amounts grouped, flags in words."""
    if key in ("created_ms", "expires_ms"):
        return format_local_time(value)
    if key == "amount":
        return f"{group_amount(value)} {shape['currency']}"
    if key == "dynamic":
        return "yes (pays once, carries its amount)" if value else "no (static: any amount)"
    if isinstance(value, bool):
        return yes_no(value)
    return str(value)


def _flatten(shape: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested fields as `additional.bill_number`; absent ones left out."""
    rows: list[tuple[str, Any]] = []
    for key, value in shape.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        elif value is not None and key != "qr":
            rows.append((prefix + key, value))
    return rows
