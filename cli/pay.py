"""`bakong pay QR`: pay a KHQR code, as a Bakong app does when it scans one.

The code is checked first (CRC, field rules, expiry against this machine's clock), so a
tampered or expired code never reaches the network. The transfer carries the code itself
(see `ledger.references`): every node checks that it pays the code's account, currency and
amount before it expires (`reference_mismatch`), and lets a dynamic code pay only once
(`already_paid`). Nodes index the payment under the code's md5.

With `--from-asset` the payer pays from another asset: one `FxTransfer` converts at the
rate the central bank published for a cross-border operator (see `ledger.fx`).
"""

from __future__ import annotations

from typing import Any

import click

from cli.fx import get_rates
from cli.keystore import Keystore
from cli.khqr import format_code_amount, now_ms, read_code_argument
from cli.options import user_errors
from cli.session import ChainInfo, TxError, TxOptions, TxSession, report, tx_options
from ledger.commands import FxTransfer, Transfer
from ledger.errors import UnknownAsset, UnknownRate
from ledger.fx import Rate, compute_source_amount
from ledger.ids import (
    AccountId,
    bank_of,
    format_amount,
    format_amount_grouped,
    operator_of,
    parse_account_id,
)
from ledger.khqr import KHQR, decode_khqr, khqr_md5


def get_pay_amount(code: KHQR, amount: str | None, chain: ChainInfo) -> int:
    """A dynamic code's own amount (an --amount must agree), or a static code's --amount."""
    # the chain holds the code's currency
    if code.currency not in chain.decimals:
        raise UnknownAsset(f"the code asks for {code.currency}, which this chain does not hold")
    if code.amount is None:
        # a static code leaves the amount to the payer
        if amount is None:
            raise TxError("a static code carries no amount: give --amount", "amount_required")
        return chain.parse_amount(code.currency, amount)
    # a dynamic code's amount is fixed
    if amount is not None and chain.parse_amount(code.currency, amount) != code.amount:
        raise TxError(
            f"the code asks for {format_code_amount(code)} {code.currency}, not {amount}",
            "amount_mismatch",
        )
    return code.amount


def choose_rate(rates: list[dict[str, Any]], via: str | None) -> dict[str, Any]:
    """The one operator's rate to convert with: --via's, or the only one published."""
    offers = [r for r in rates if via in (None, r["operator"])]
    # someone converts this pair
    if not offers:
        raise UnknownRate("no published rate converts these currencies (see `bakong fx show`)")
    # the choice is not ours to make
    if len(offers) > 1:
        names = ", ".join(r["operator"] for r in offers)
        raise TxError(f"several operators convert this pair ({names}): give --via", "ambiguous")
    return offers[0]


def make_fx_transfer(
    session: TxSession,
    payer: AccountId,
    code: KHQR,
    value: int,
    source: str,
    via: str | None,
    text: str,
) -> FxTransfer:
    """Pay `value` of the code's currency from the payer's `source` asset, at the
    published rate; the payer signs the exact source amount it agrees to."""
    # the chain holds the asset paid from
    if source not in session.chain.decimals:
        raise UnknownAsset(f"asset {source!r} is not defined on this chain")
    rates = [
        r for r in get_rates(session.client) if (r["base"], r["quote"]) == (source, code.currency)
    ]
    offer = choose_rate(rates, via)
    cost = compute_source_amount(value, Rate(offer["numerator"], offer["denominator"]))
    shown = format_amount(cost, session.chain.decimals[source])
    if not session.opts.as_json:
        click.echo(
            f"paying {shown} {source} for {format_code_amount(code) or value} {code.currency} "
            f"at 1 {source} = {offer['rate']} {code.currency} via {offer['operator']}",
            err=True,
        )
    operator = offer["operator"]
    return FxTransfer(
        payer, code.account_id, operator, source, cost, code.currency, value, khqr=text
    )


@click.command("pay")
@click.argument("qr", metavar="QR|-")
@click.option("--from", "from_", required=True, metavar="ACCOUNT", help="The payer.")
@click.option(
    "--amount",
    help="Amount in the code's currency: required for a static code; for a dynamic code "
    "it may be given only if it equals the code's.",
)
@click.option(
    "--from-asset",
    metavar="ASSET",
    help="Pay from this asset of the payer's account (e.g. USD for a KHR code): converted "
    "at the central bank's published rate through a cross-border operator.",
)
@click.option(
    "--via",
    metavar="BANK",
    help="The cross-border operator converting (default: the only one with a rate).",
)
@tx_options
def pay(
    qr: str,
    from_: str,
    amount: str | None,
    from_asset: str | None,
    via: str | None,
    opts: TxOptions,
) -> None:
    """Pay the KHQR code QR ('-': read it from stdin) from ACCOUNT.

    Refuses a tampered (bad_crc, ...) or expired (expired) code before signing. The
    payee is the code's Bakong account; the transfer carries the code, which every node
    checks binds it (payee, currency, amount, expiry: else reference_mismatch); a
    dynamic code pays once (a second payment is rejected already_paid). Find the
    payment later with `bakong tx find --md5 MD5`. Signed like `bakong
    transfer`: the payer's own key if the wallet holds it, else its bank (custodial).

    --from-asset USD pays a KHR code from the payer's dollars in one atomic tx: payer
    USD -> operator (admin@BANK), operator KHR -> payee, at the published rate, the
    dollars rounded up to the cent. If the rate changes before the tx commits it is
    rejected (rate_changed) rather than charged differently.
    """
    with user_errors():
        text = read_code_argument(qr)
        code = decode_khqr(text, now_ms())
        payer = parse_account_id(from_)
        session = TxSession(opts)
        value = get_pay_amount(code, amount, session.chain)
        command: Transfer | FxTransfer = Transfer(
            payer, code.account_id, code.currency, value, khqr=text
        )
        source = from_asset.upper() if from_asset else code.currency
        if source != code.currency:
            command = make_fx_transfer(session, payer, code, value, source, via, text)
        signer = payer if Keystore(opts.home).has(payer) else operator_of(bank_of(payer))
        status = session.deliver(session.sign(command, signer))
    if status is None:  # --offline: the signed tx was printed
        return
    with user_errors():
        report(status, opts)
    if status["status"] == "committed" and not opts.as_json:
        print_receipt(command, code, text, status, session.chain)


def print_receipt(
    command: Transfer | FxTransfer, code: KHQR, text: str, status: dict[str, Any], chain: ChainInfo
) -> None:
    """What the Bakong app shows after a payment: payee, amount (both currencies across
    currencies), reference, height and the full tx hash."""

    def money(amount: int, asset: str) -> str:
        return f"{format_amount_grouped(amount, chain.decimals.get(asset, 0))} {asset}"

    paid = money(command.amount, command.asset)
    if isinstance(command, FxTransfer):
        paid += f" (paid {money(command.source_amount, command.source_asset)} via "
        paid += f"{command.operator})"
    rows = [
        ("paid", paid),
        ("to", f"{code.account_id} ({code.merchant_name}, {code.merchant_city})"),
        ("from", command.from_),
        ("code", f"{'dynamic' if code.is_dynamic else 'static'}, md5 {khqr_md5(text)}"),
    ]
    if code.additional.bill_number:
        rows.append(("bill", code.additional.bill_number))
    rows += [("height", str(status["height"])), ("tx", str(status["hash"]))]
    click.echo("receipt")
    for key, value in rows:
        click.echo(f"  {key:<7} {value}")
