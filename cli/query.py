"""`bakong balance`: an account's balances, next nonce and whether it is frozen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cli.client import NodeClient
from cli.human import group_amount
from cli.options import home_option, json_option, node_option, user_errors
from ledger.ids import parse_account_id

BALANCE_KEYS = ("account", "balances", "nonce", "frozen", "role", "public_key")


@click.command("balance")
@click.argument("account")
@node_option
@json_option
@home_option
def balance(account: str, node_url: str | None, as_json: bool, home: Path) -> None:
    """Show ACCOUNT's balance in every asset (exact decimals), its next nonce and status.

    --json prints {"account", "balances": {"KHR": "0", "USD": "12.50"}, "nonce",
    "frozen", "role", "public_key"}; amounts are strings, never floats.
    """
    with user_errors():
        found = NodeClient(home, node_url).get_account(parse_account_id(account))
    shape = {key: found.get(key) for key in BALANCE_KEYS}
    if as_json:
        click.echo(json.dumps(shape))
        return
    print_balance(shape)


def print_balance(account: dict[str, Any]) -> None:
    status = "frozen" if account["frozen"] else "active"
    console = Console()
    console.print(
        f"[bold]{account['account']}[/bold]  {account['role']}, {status}, "
        f"next nonce {account['nonce']}"
    )
    table = Table()
    table.add_column("asset")
    table.add_column("balance", justify="right")
    for asset, amount in account["balances"].items():
        table.add_row(asset, group_amount(amount))
    console.print(table)
