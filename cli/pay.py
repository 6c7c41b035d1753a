"""`bakong pay QR`: pay a KHQR code, as a Bakong app does when it scans one.

The code is checked first (CRC, field rules, expiry against this machine's clock), so a
tampered or expired code never reaches the network. The transfer carries the code's
payment reference (see `ledger.references`): a dynamic code's md5, which the ledger lets
pay only once (`already_paid`), or `<md5>:static` for a static code.
"""

from __future__ import annotations

import click

from cli.keystore import Keystore
from cli.khqr import format_code_amount, now_ms, read_code_argument
from cli.options import user_errors
from cli.txcmds import ChainInfo, TxError, TxOptions, TxSession, tx_options
from ledger.commands import Transfer
from ledger.errors import UnknownAsset
from ledger.ids import bank_of, operator_of, parse_account_id
from ledger.khqr import KHQR, decode_khqr, khqr_md5
from ledger.references import make_static_reference


def get_reference(code: KHQR, text: str) -> str:
    md5 = khqr_md5(text)
    return md5 if code.is_dynamic else make_static_reference(md5)


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


@click.command("pay")
@click.argument("qr", metavar="QR|-")
@click.option("--from", "from_", required=True, metavar="ACCOUNT", help="The payer.")
@click.option(
    "--amount",
    help="Amount in the code's currency: required for a static code; for a dynamic code "
    "it may be given only if it equals the code's.",
)
@tx_options
def pay(qr: str, from_: str, amount: str | None, opts: TxOptions) -> None:
    """Pay the KHQR code QR ('-': read it from stdin) from ACCOUNT.

    Refuses a tampered (bad_crc, ...) or expired (expired) code before signing. The
    payee is the code's Bakong account; the transfer's reference is the code's md5 (a
    dynamic code pays once: a second payment is rejected already_paid) or <md5>:static.
    Find the payment later with `bakong tx find --md5 MD5`. Signed like `bakong
    transfer`: the payer's own key if the wallet holds it, else its bank (custodial).
    """
    with user_errors():
        text = read_code_argument(qr)
        code = decode_khqr(text, now_ms())
        payer = parse_account_id(from_)
        session = TxSession(opts)
        value = get_pay_amount(code, amount, session.chain)
        command = Transfer(payer, code.account_id, code.currency, value, get_reference(code, text))
        signer = payer if Keystore(opts.home).has(payer) else operator_of(bank_of(payer))
        session.run(command, signer)
