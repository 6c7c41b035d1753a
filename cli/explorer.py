"""`bakong explorer blocks|block|tx|account|follow|web`: read the chain through a node's API.

Tables for people, the contract's JSON shapes with --json. Hashes are shortened in
tables only; JSON always carries them whole. People read local ISO times and amounts
with thousands separators; JSON keeps epoch milliseconds and exact decimal strings.
An empty result is a sentence, not an empty table.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import click
from rich.console import Console
from rich.table import Table

from cli.client import NodeClient
from cli.errors import CliError
from cli.options import home_option, json_option, node_option, user_errors
from cli.query import BALANCE_KEYS, print_balance
from ledger.errors import LedgerError
from ledger.ids import format_amount_grouped, parse_account_id, parse_amount

SHORT_HASH: Final = 16
FOLLOW_BATCH: Final = 100
# the fields of a command that hold an amount (exact decimal strings in the API)
_AMOUNT_FIELDS: Final = ("amount", "source_amount")
# what a person may type for a hash: 8 or more of its hex digits (tables show 16)
_PREFIX_RE: Final = re.compile(r"[0-9a-fA-F]{8,64}")
_BEFORE_RE: Final = re.compile(r"\d+:\d+")

# One line per command type, for tables and `follow`.
_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "transfer": "transfer {amount} {asset} {from} -> {to}",
    "issue": "issue {amount} {asset} to {to}",
    "redeem": "redeem {amount} {asset} from {from}",
    "create_account": "create account {account} ({role})",
    "freeze": "freeze {account}",
    "unfreeze": "unfreeze {account}",
    "register_bank": "register bank {code} ({name})",
    "add_validator": "add validator {bank}",
    "remove_validator": "remove validator {bank}",
    "set_rate": "set rate {base}->{quote} = {numerator}/{denominator} via {operator}",
    "fx_transfer": "fx transfer {source_amount} {source_asset} {from} -> {amount} {asset} {to} "
    "via {operator}",
}


class ExplorerError(CliError):
    code = "invalid_argument"


def describe_command(cmd: Mapping[str, Any]) -> str:
    template = _DESCRIPTIONS.get(str(cmd.get("type")))
    if template is None:
        return " ".join(f"{k}={v}" for k, v in cmd.items())
    shown = {**cmd} | {k: group_amount(cmd[k]) for k in _AMOUNT_FIELDS if k in cmd}
    try:
        return template.format_map(shown)
    except KeyError:
        return str(cmd.get("type"))


def group_amount(text: Any) -> str:
    """An exact decimal string with thousands separators ("4000000.50" ->
    "4,000,000.50"); anything that is not one is shown as it is."""
    if not isinstance(text, str):
        return str(text)
    decimals = len(text.partition(".")[2])
    try:
        return format_amount_grouped(parse_amount(text, decimals), decimals)
    except LedgerError:
        return text


def describe_commands(commands: list[Mapping[str, Any]]) -> str:
    return "; ".join(describe_command(c) for c in commands)


def format_time(ms: int, timespec: str = "milliseconds") -> str:
    """Epoch milliseconds as a local ISO time: 2025-01-02T15:04:05.123+07:00 (or to the
    second with timespec="seconds", as tables show it)."""
    moment = datetime.fromtimestamp(ms / 1000).astimezone()
    return moment.isoformat(timespec=timespec)


def wrap(text: str, width: int, indent: int) -> list[str]:
    """`text` cut at blanks into lines of at most `width` columns (a word longer than a
    line is broken), the lines after the first indented."""
    return textwrap.wrap(
        text,
        width=max(width, indent + 20),
        subsequent_indent=" " * indent,
        break_on_hyphens=False,
    ) or [""]


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def short(hex_text: str | None) -> str:
    return (hex_text or "-")[:SHORT_HASH]


def get_tx_json(status: Mapping[str, Any]) -> dict[str, Any]:
    """{"hash", "status", "height", "signer", "commands", ...}; a rejected tx's body is
    not kept by the node, so its signer is null and its commands empty."""
    body = status.get("tx") or {}
    out: dict[str, Any] = {key: status.get(key) for key in ("hash", "status", "height")}
    for key in ("position", "error", "message"):
        if status.get(key) is not None:
            out[key] = status[key]
    out["signer"] = body.get("signer")
    out["commands"] = body.get("commands", [])
    for key in ("nonce", "memo", "created_at"):
        out[key] = body.get(key)
    return out


def get_history_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    body = entry.get("tx") or {}
    out = {key: entry.get(key) for key in ("height", "position", "hash")}
    out |= {key: body.get(key) for key in ("signer", "nonce", "memo", "commands")}
    return out


@click.group("explorer")
def explorer() -> None:
    """Browse blocks, transactions and accounts; `follow` watches new blocks."""


@explorer.command("blocks")
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option(
    "--from",
    "start",
    type=click.IntRange(min=1),
    help="Oldest first from this height, instead of the newest blocks.",
)
@node_option
@json_option
@home_option
def blocks(limit: int, start: int | None, node_url: str | None, as_json: bool, home: Path) -> None:
    """List recent blocks, newest first: [{"height", "hash", "time", "proposer", "txs"}]."""
    with user_errors():
        page = NodeClient(home, node_url).get_blocks(limit, start)
    if as_json:
        click.echo(json.dumps(page["blocks"]))
        return
    if not page["blocks"]:
        where = f" from height {start}" if start is not None else ""
        click.echo(f"no blocks{where} (chain at height {page['height']})")
        return
    table = Table(title=f"blocks (chain height {page['height']})")
    for column in ("height", "hash", "time", "proposer"):
        table.add_column(column, no_wrap=True)
    table.add_column("txs", justify="right", no_wrap=True)
    for header in page["blocks"]:
        table.add_row(
            str(header["height"]),
            short(header["hash"]),
            format_time(header["time"], "seconds"),
            header["proposer"],
            str(header["txs"]),
        )
    Console().print(table)


@explorer.command("block")
@click.argument("ref", metavar="HEIGHT|HASH")
@node_option
@json_option
@home_option
def block(ref: str, node_url: str | None, as_json: bool, home: Path) -> None:
    """Show one block by height, hash or hash prefix (8+ hex digits, as the tables show):
    header, transactions and commit signatures. An ambiguous prefix lists its matches."""
    with user_errors():
        # a height, a hash or a prefix: anything else is a typo, not a 404
        if not (ref.isdigit() or _PREFIX_RE.fullmatch(ref)):
            raise ExplorerError(
                f"expected a block height, a hash or 8+ of its hex digits, got {ref!r}"
            )
        found = NodeClient(home, node_url).get_block(ref.lower())
    if as_json:
        click.echo(json.dumps(found))
        return
    print_block(found)


def print_block(found: Mapping[str, Any]) -> None:
    console = Console()
    console.print(f"[bold]block {found['height']}[/bold]  {found['hash']}", overflow="fold")
    for key in ("chain_id", "proposer", "prev_hash", "state_hash", "tx_root"):
        console.print(f"  {key:<12} {found[key]}", overflow="fold")
    console.print(f"  {'time':<12} {format_time(found['time'])}")
    if found["txs"]:
        txs = Table(title=plural(len(found["txs"]), "transaction"))
        _add_fixed_columns(txs, "#", "hash")
        txs.add_column("signer", overflow="fold")
        _add_fixed_columns(txs, "nonce")
        txs.add_column("what", overflow="fold", ratio=1)
        for index, tx in enumerate(found["txs"]):
            what = describe_commands(tx["commands"])
            txs.add_row(str(index), short(tx["hash"]), tx["signer"], str(tx["nonce"]), what)
        console.print(txs)
    else:
        console.print("  no transactions in this block")
    rejected = found.get("rejected") or []
    if rejected:
        console.print(
            f"  {plural(len(rejected), 'tx')} rejected at this height (this node's view):"
        )
        for entry in rejected:
            text = f"    {describe_rejection(entry)}"
            console.print(text, overflow="fold", markup=False, highlight=False)
    commit = found.get("commit") or {"signatures": [], "round": "-"}
    if not commit["signatures"]:
        console.print("  no commit signatures (the genesis block has no commit)")
        return
    sigs = Table(
        title=f"commit: {plural(len(commit['signatures']), 'signature')}, round {commit['round']}"
    )
    sigs.add_column("validator")
    sigs.add_column("public key", no_wrap=True)
    for sig in commit["signatures"]:
        sigs.add_row(sig["validator"] or "?", short(sig["public_key"]))
    console.print(sigs)


def _add_fixed_columns(table: Table, *headers: str) -> None:
    """Columns that must not wrap or shrink: a hash cut in two lines reads as two."""
    for header in headers:
        table.add_column(header, no_wrap=True, min_width=SHORT_HASH if header == "hash" else None)


@explorer.command("tx")
@click.argument("tx_hash", metavar="HASH")
@node_option
@json_option
@home_option
def tx(tx_hash: str, node_url: str | None, as_json: bool, home: Path) -> None:
    """Show one transaction by hash or hash prefix (8+ hex digits): status, block height,
    signer and commands (or why it was rejected)."""
    with user_errors():
        found = get_tx_json(NodeClient(home, node_url).get_tx(tx_hash.lower()))
    if as_json:
        click.echo(json.dumps(found))
        return
    console = Console()
    console.print(f"[bold]tx[/bold] {found['hash']}")
    where = f" at height {found['height']}, position {found.get('position')}"
    console.print(f"  status     {found['status']}{where if found['height'] else ''}")
    if "error" in found:
        reason = f": {found['message']}" if found.get("message") else ""
        console.print(f"  reason     {found['error']}{reason}")
    if found["signer"] is not None:
        console.print(f"  signer     {found['signer']} (nonce {found['nonce']})")
        console.print(f"  created    {format_time(found['created_at'])}")
        console.print(f"  memo       {found['memo'] or '-'}")
    for cmd in found["commands"]:
        console.print(f"  command    {describe_command(cmd)}")


@explorer.command("account")
@click.argument("account")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option(
    "--before",
    metavar="HEIGHT:POSITION",
    help='Page on: only transactions older than this (the previous page\'s "next").',
)
@node_option
@json_option
@home_option
def account(
    account: str,
    limit: int,
    before: str | None,
    node_url: str | None,
    as_json: bool,
    home: Path,
) -> None:
    """Show ACCOUNT's balances and its transactions, newest first, a page at a time."""
    with user_errors():
        account_id = parse_account_id(account)
        # the node would refuse it anyway; say so in the CLI's words
        if before is not None and _BEFORE_RE.fullmatch(before) is None:
            raise ExplorerError(f"--before must be HEIGHT:POSITION, got {before!r}")
        client = NodeClient(home, node_url)
        found = client.get_account(account_id)
        history = client.get_account_transactions(account_id, limit, before)
        next_page = history["next"]
        # the node answers a cursor whenever a page is full: check that a page follows
        if (
            next_page
            and not client.get_account_transactions(account_id, 1, next_page)["transactions"]
        ):
            next_page = None
    shape = {key: found.get(key) for key in BALANCE_KEYS}
    shape["transactions"] = [get_history_entry(e) for e in history["transactions"]]
    shape["next"] = next_page
    if as_json:
        click.echo(json.dumps(shape))
        return
    print_balance(shape)
    print_history(shape, before)


def print_history(shape: Mapping[str, Any], before: str | None = None) -> None:
    if not shape["transactions"]:
        older = f" before {before}" if before else ""
        click.echo(f"no transactions of {shape['account']}{older}")
        return
    table = Table(title="transactions, newest first")
    _add_fixed_columns(table, "height", "hash")
    table.add_column("signer", overflow="fold")
    table.add_column("what", overflow="fold", ratio=1)
    for entry in shape["transactions"]:
        what = describe_commands(entry["commands"] or [])
        table.add_row(str(entry["height"]), short(entry["hash"]), entry["signer"] or "-", what)
    Console().print(table)
    if shape["next"]:
        click.echo(f"more: bakong explorer account {shape['account']} --before {shape['next']}")


@explorer.command("follow")
@click.option(
    "--from",
    "start",
    type=click.IntRange(min=1),
    help="Start at this height (default: the next block to commit).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=0.5,
    show_default=True,
    help="Seconds between polls.",
)
@click.option(
    "--limit-blocks",
    type=click.IntRange(min=1),
    help="Stop after printing this many blocks (default: run until Ctrl-C).",
)
@node_option
@json_option
@home_option
def follow(
    start: int | None,
    interval: float,
    limit_blocks: int | None,
    node_url: str | None,
    as_json: bool,
    home: Path,
) -> None:
    """Print each new block as it commits, with its transactions, until Ctrl-C.

    It starts with a header (the chain, the node, the height it waits for); lines fit
    the terminal. --json prints one block header object per line and nothing else.
    """
    client = NodeClient(home, node_url)
    width = Console().width
    printed = 0
    try:
        with user_errors():
            status = client.get_status()
            tip = int(status["height"])
            next_height = start or tip + 1
            if not as_json:
                print_follow_header(str(status["chain_id"]), client.url, next_height, tip, width)
            while limit_blocks is None or printed < limit_blocks:
                page = client.get_blocks(FOLLOW_BATCH, next_height)["blocks"]
                for header in page[: None if limit_blocks is None else limit_blocks - printed]:
                    print_followed(client, header, as_json, width)
                    printed += 1
                    next_height = header["height"] + 1
                if not page:
                    time.sleep(interval)
    except KeyboardInterrupt:
        return


def print_follow_header(chain_id: str, url: str, next_height: int, tip: int, width: int) -> None:
    for line in wrap(f"following {chain_id} at {url} (Ctrl-C to stop)", width, 2):
        click.echo(line)
    if next_height > tip:
        click.echo(f"waiting for height {next_height} (chain at {tip})")
    else:
        click.echo(f"from height {next_height} (chain at {tip})")


def print_followed(
    client: NodeClient, header: Mapping[str, Any], as_json: bool, width: int = 80
) -> None:
    if as_json:
        click.echo(json.dumps(header))
        return
    line = (
        f"block {header['height']}  {short(header['hash'])}  "
        f"{format_time(header['time'], 'seconds')}  proposer {header['proposer']}  "
        f"{plural(header['txs'], 'tx')}"
    )
    for part in wrap(line, width, 4):
        click.echo(part)
    # the block itself: its txs, and the txs the node found failing at this height
    found = client.get_block(str(header["height"]))
    for tx in found["txs"]:
        text = f"    {short(tx['hash'])}  {tx['signer']}: {describe_commands(tx['commands'])}"
        for part in wrap(text, width, 8):
            click.echo(part)
    for rejected in found.get("rejected") or []:
        for part in wrap(f"    {describe_rejection(rejected)}", width, 8):
            click.echo(part)


def describe_rejection(entry: Mapping[str, Any]) -> str:
    message = f": {entry['message']}" if entry.get("message") else ""
    return f"rejected {short(entry.get('hash'))}  {entry.get('error')}{message}"


@explorer.command("web")
@click.option("--open", "open_browser", is_flag=True, help="Open it in the default browser.")
@node_option
@json_option
@home_option
def web(open_browser: bool, node_url: str | None, as_json: bool, home: Path) -> None:
    """Print the URL of the web explorer of the first node that answers (every node
    serves one at /): --json prints {"url", "node", "height"}."""
    with user_errors():
        client = NodeClient(home, node_url)
        status = client.get_status()
    url = f"{client.url}/"
    if as_json:
        click.echo(
            json.dumps({"url": url, "node": status.get("node"), "height": status.get("height")})
        )
    else:
        click.echo(url)
    if open_browser and click.launch(url) != 0:
        click.echo("could not start a browser here: open the URL above yourself", err=True)
