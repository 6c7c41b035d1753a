"""`bakong fx register|set|show`: cross-border operators and the exchange rates the central
bank publishes for them (see `ledger.fx`). Paying across currencies is `bakong pay
--from-asset`.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any, Final

import click
from rich.console import Console
from rich.table import Table

from cli.client import NodeClient
from cli.human import group_amount
from cli.keystore import Keystore
from cli.options import home_option, json_option, node_option, user_errors
from cli.session import ChainInfo, TxError, TxOptions, TxSession, tx_options
from ledger.commands import RegisterBank, SetRate
from ledger.crypto import PrivateKey
from ledger.errors import UnknownAsset
from ledger.fx import Rate, parse_rate
from ledger.ids import central_bank_operator, operator_of, parse_bank_code

_RATIO: Final = re.compile(r"([1-9][0-9]{0,18})/([1-9][0-9]{0,18})")


@click.group("fx")
def fx_group() -> None:
    """Cross-border operators and exchange rates (pay across currencies with
    `bakong pay QR --from-asset USD`)."""


@fx_group.command("register")
@click.argument("code", metavar="BANK")
@click.option("--name", required=True, help="The operator's name, e.g. 'Alipay+'.")
@tx_options
def register(code: str, name: str, opts: TxOptions) -> None:
    """Register cross-border operator BANK (e.g. alipayplus) as a bank (signer: admin@nbc).

    Its settlement account admin@BANK converts between currencies; its key is created
    in the wallet (or reused). It runs no node. Next: give it liquidity in both
    currencies (`bakong issue --to admin@BANK ...`) and publish its rates (`bakong fx set`).
    """
    with user_errors():
        bank = parse_bank_code(code)
        account = operator_of(bank)
        keystore = Keystore(opts.home)
        new_key = None if keystore.has(account) else PrivateKey.generate()
        public_key = new_key.public_key if new_key else keystore.read(account).public_key
        session = TxSession(opts)
        node_key = PrivateKey.generate().public_key
        tx = session.sign(RegisterBank(bank, name, public_key, node_key), central_bank_operator())
        session.run_with_new_key(tx, keystore, account, new_key)


def get_rate_argument(
    chain: ChainInfo, base: str, quote: str, rate: str | None, ratio: str | None
) -> Rate:
    """RATE in whole units ("1 BASE = RATE QUOTE"), or --ratio N/D in minor units."""
    for asset in (base, quote):
        # both assets exist on this chain
        if asset not in chain.decimals:
            raise UnknownAsset(f"asset {asset!r} is not defined on this chain")
    if (rate is None) == (ratio is None):
        raise click.UsageError("give exactly one of RATE and --ratio")
    if rate is not None:
        return parse_rate(rate, chain.decimals[base], chain.decimals[quote])
    match = _RATIO.fullmatch(ratio or "")
    # two positive integers
    if match is None:
        raise TxError(f"bad ratio {ratio!r}: expected N/D, e.g. 41/1", "invalid_rate")
    return Rate(int(match.group(1)), int(match.group(2)))


@fx_group.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("base")
@click.argument("quote")
@click.argument("rate", required=False)
@click.option("--operator", required=True, metavar="BANK", help="The cross-border operator.")
@click.option(
    "--ratio",
    metavar="N/D",
    help="The exact ratio of minor units instead of RATE: one minor unit of BASE is "
    "N/D minor units of QUOTE (USD->KHR at 4100: 41/1).",
)
@tx_options
def set_rate(
    base: str, quote: str, rate: str | None, operator: str, ratio: str | None, opts: TxOptions
) -> None:
    """Publish the rate at which --operator converts BASE into QUOTE (signer: admin@nbc).

    RATE is whole QUOTE units per whole BASE unit: `bakong fx set USD KHR 4100
    --operator alipayplus` means 1 USD = 4100 KHR. It is stored exactly, as a reduced
    ratio of minor units. A payer converting BASE to deliver an amount of QUOTE pays
    ceil(amount x denominator / numerator) of BASE: rounded in the operator's favour, by
    less than one minor unit. Each direction is its own rate (publish KHR USD too for
    payments the other way); setting a pair again replaces its rate.
    """
    with user_errors():
        session = TxSession(opts)
        base, quote = base.upper(), quote.upper()
        value = get_rate_argument(session.chain, base, quote, rate, ratio)
        bank = parse_bank_code(operator)
        command = SetRate(bank, base, quote, value.numerator, value.denominator)
        session.run(command, central_bank_operator())


def get_rates(client: NodeClient, operator: str = "") -> list[dict[str, Any]]:
    """The published rates, as GET /v1/fx/rates answers them."""
    query = "?" + urllib.parse.urlencode({"operator": operator}) if operator else ""
    reply = client.request("GET", "/v1/fx/rates" + query)
    rates = reply.get("rates") if isinstance(reply, dict) else None
    return rates if isinstance(rates, list) else []


@fx_group.command("show")
@click.option("--operator", metavar="BANK", default="", help="Only this operator's rates.")
@node_option
@json_option
@home_option
def show(operator: str, node_url: str | None, as_json: bool, home: Path) -> None:
    """Show the published exchange rates.

    --json prints [{"operator", "base", "quote", "numerator", "denominator", "rate"}]:
    the exact ratio of minor units, and "rate" (whole QUOTE per whole BASE, at most 6
    decimals) for reading.
    """
    with user_errors():
        bank = parse_bank_code(operator) if operator else ""
        rates = get_rates(NodeClient(home, node_url), bank)
    if as_json:
        click.echo(json.dumps(rates))
        return
    table = Table()
    for column in ("operator", "pair", "rate", "ratio (minor units)"):
        table.add_column(column)
    for r in rates:
        pair = f"1 {r['base']} = {group_amount(r['rate'])} {r['quote']}"
        table.add_row(r["operator"], f"{r['base']}/{r['quote']}", pair,
                      f"{r['numerator']}/{r['denominator']}")  # fmt: skip
    Console().print(table)
