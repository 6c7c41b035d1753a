"""Reading commands around the chain: `bakong assets`, `bakong accounts`, `bakong logs`
and `bakong completion`.

`assets` and `accounts` ask a node (`GET /v1/assets`, `GET /v1/accounts`); `logs` reads
a testnet node's log file in HOME; `completion` prints click's shell completion script.
"""

from __future__ import annotations

import codecs
import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any, Final

import click
from click.shell_completion import get_completion_class
from rich.console import Console
from rich.table import Table

from cli import http
from cli.client import NodeClient, NodeReplyError
from cli.devnet.testnet import LOG_FILE, OUT_FILE, get_node_dir, load_manifest
from cli.errors import CliError
from cli.options import home_option, json_option, node_option, user_errors
from ledger.ids import parse_account_id, parse_bank_code

# What one `GET /v1/accounts` may ask for (the node's bound).
MAX_PAGE: Final = 1000
DEFAULT_ACCOUNTS: Final = 100
DEFAULT_LOG_LINES: Final = 20
FOLLOW_POLL_S: Final = 0.25
PROG_NAME: Final = "bakong"
COMPLETE_VAR: Final = "_BAKONG_COMPLETE"
SHELLS: Final = ("bash", "zsh", "fish")


def group_digits(amount: str) -> str:
    """An exact decimal string for people: "1234567.50" -> "1,234,567.50"."""
    whole, dot, frac = amount.partition(".")
    sign = "-" if whole.startswith("-") else ""
    digits = whole.lstrip("-")
    return f"{sign}{int(digits):,}{dot}{frac}" if digits.isdigit() else amount


def _get(client: NodeClient, path: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
    path = http.with_query(path, query)
    reply = client.request("GET", path)
    if not isinstance(reply, dict):
        raise NodeReplyError(f"{client.url}{path}: expected a JSON object", "bad_response")
    return reply


# ---------------------------------------------------------------------------------------
# assets


@click.command("assets")
@node_option
@json_option
@home_option
def assets(node_url: str | None, as_json: bool, home: Path) -> None:
    """List the chain's assets and their decimals.

    KHR has 0 decimals (whole riel), USD 2 (cents). Amounts on the command line and
    in JSON are decimal strings in these units; the ledger counts minor units.
    --json prints [{"code", "decimals"}].
    """
    with user_errors():
        reply = _get(NodeClient(home, node_url), "/v1/assets")
    found: list[dict[str, Any]] = [
        {"code": str(a["code"]), "decimals": int(a["decimals"])}
        for a in reply.get("assets", [])
        if isinstance(a, dict)
    ]
    if as_json:
        click.echo(json.dumps(found))
        return
    table = Table()
    table.add_column("asset")
    table.add_column("decimals", justify="right")
    table.add_column("smallest amount", justify="right")
    for a in found:
        smallest = f"0.{'0' * (a['decimals'] - 1)}1" if a["decimals"] else "1"
        table.add_row(a["code"], str(a["decimals"]), f"{smallest} {a['code']}")
    Console().print(table)


# ---------------------------------------------------------------------------------------
# accounts


@click.command("accounts")
@click.option("--bank", metavar="BANK", help="Only this bank's accounts (admin@BANK included).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=DEFAULT_ACCOUNTS,
    show_default=True,
    help="Show at most N accounts.",
)
@click.option(
    "--after",
    metavar="ACCOUNT",
    help="Start after this account id: the `next` of an earlier listing.",
)
@node_option
@json_option
@home_option
def accounts(
    bank: str | None,
    limit: int,
    after: str | None,
    node_url: str | None,
    as_json: bool,
    home: Path,
) -> None:
    """List accounts with their balances (all, or one bank's with --bank).

    Accounts come in id order. --json prints {"accounts": [{"account", "role",
    "frozen", "balances": {"KHR": "1000", ...}}], "next"}: amounts are exact decimal
    strings; "next" is null at the end, else the account id to pass as --after for
    more.
    """
    with user_errors():
        code = parse_bank_code(bank) if bank else None
        start = parse_account_id(after) if after else None
        found, cursor = _list_accounts(NodeClient(home, node_url), code, limit, start)
    if as_json:
        click.echo(json.dumps({"accounts": found, "next": cursor}))
        return
    print_accounts(found, cursor, code)


def _list_accounts(
    client: NodeClient, bank: str | None, limit: int, after: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `limit` accounts over as many pages as it takes (a node's page may be
    short: it bounds what one request reads), and the cursor for the rest."""
    found: list[dict[str, Any]] = []
    cursor = after
    while len(found) < limit:
        query: dict[str, Any] = {"limit": min(limit - len(found), MAX_PAGE)}
        query |= ({"bank": bank} if bank else {}) | ({"after": cursor} if cursor else {})
        page = _get(client, "/v1/accounts", query)
        found += [a for a in page.get("accounts", []) if isinstance(a, dict)]
        following = page.get("next")
        # the node's cursor only moves forward; a repeated one would loop forever
        if not isinstance(following, str) or following == cursor:
            return found, None
        cursor = following
    return found, cursor


def print_accounts(found: list[dict[str, Any]], cursor: str | None, bank: str | None) -> None:
    console = Console()
    if not found:
        console.print(f"no accounts{f' at bank {bank}' if bank else ''}")
    else:
        asset_codes = sorted({code for a in found for code in a.get("balances", {})})
        table = Table()
        table.add_column("account")
        table.add_column("role")
        table.add_column("status")
        for code in asset_codes:
            table.add_column(code, justify="right")
        for a in found:
            balances = a.get("balances", {})
            cells = [group_digits(str(balances.get(code, "0"))) for code in asset_codes]
            status = "frozen" if a.get("frozen") else "active"
            table.add_row(str(a["account"]), str(a.get("role", "")), status, *cells)
        console.print(table)
    if cursor is not None:
        more = f" --bank {bank}" if bank else ""
        console.print(f"more: bakong accounts{more} --after {cursor}", highlight=False)


# ---------------------------------------------------------------------------------------
# logs


class LogError(CliError):
    code = "no_log"


@click.command("logs")
@click.argument("node_name", metavar="NODE")
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing what the node writes, like `tail -f`, until Ctrl-C.",
)
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    default=DEFAULT_LOG_LINES,
    show_default=True,
    help="Print the last N lines first.",
)
@click.option(
    "--out",
    "process_output",
    is_flag=True,
    help=f"Show {OUT_FILE} (the process's own output: a crash's traceback lands there) "
    f"instead of {LOG_FILE} (the node's events).",
)
@home_option
def logs(node_name: str, follow: bool, lines: int, process_output: bool, home: Path) -> None:
    """Print a testnet node's log (-f follows it).

    NODE is a name of `bakong testnet status`. Prints the last --lines lines of
    HOME/nodes/NODE/node.log; with -f it keeps printing new lines until Ctrl-C
    (exit 0).
    """
    with user_errors():
        manifest = load_manifest(home)
    entry = next((n for n in manifest.nodes if n.name == node_name), None)
    if entry is None:
        names = ", ".join(n.name for n in manifest.nodes)
        raise CliError(f"no node {node_name!r} in {home}; its nodes: {names}", "unknown_node")
    path = get_node_dir(home, entry) / (OUT_FILE if process_output else LOG_FILE)
    if not path.is_file():
        raise LogError(
            f"node {node_name} has no {path.name} yet ({path}): start it with `bakong testnet up`"
        )
    try:
        with path.open("rb") as f:
            for line in read_last_lines(f, lines):
                click.echo(line.decode(errors="replace"), nl=False)
            position = f.tell()
        if follow:
            follow_file(path, position)
    except KeyboardInterrupt:
        return
    except BrokenPipeError:
        _silence_stdout()


def read_last_lines(f: IO[bytes], count: int, block: int = 64 * 1024) -> list[bytes]:
    """The last `count` lines of `f` (each with its newline, the last maybe without),
    read backwards from the end: logs grow large. Leaves `f` at its end."""
    end = f.seek(0, os.SEEK_END)
    if count == 0:
        return []
    start, data, newlines = end, b"", 0
    # one newline more than lines wanted (the first line read may be cut), or the start
    while start > 0 and newlines <= count:
        chunk_start = max(0, start - block)
        f.seek(chunk_start)
        chunk = f.read(start - chunk_start)
        data, start, newlines = chunk + data, chunk_start, newlines + chunk.count(b"\n")
    f.seek(end)
    return data.splitlines(keepends=True)[-count:]


def follow_file(path: Path, position: int) -> None:
    """Print what is appended to `path` after `position`, until interrupted; a truncated
    or replaced file (same name, new inode) is read again from its start."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    f = path.open("rb")
    try:
        f.seek(position)
        inode = os.fstat(f.fileno()).st_ino
        while True:
            data = f.read(64 * 1024)
            if data:
                click.echo(decoder.decode(data), nl=False)
                sys.stdout.flush()
                continue
            time.sleep(FOLLOW_POLL_S)
            try:
                current = path.stat()
            except FileNotFoundError:
                continue
            if current.st_ino != inode:
                f.close()
                f = path.open("rb")
                inode = current.st_ino
            elif current.st_size < f.tell():
                f.seek(0)
    finally:
        f.close()


def _silence_stdout() -> None:
    """The reader went away (`bakong logs X | head`): end quietly, without Python's
    complaint about flushing a closed pipe at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# ---------------------------------------------------------------------------------------
# completion


@click.command("completion")
@click.argument("shell", metavar="SHELL", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    With it installed, commands, options and choices complete on Tab.

    \b
    Install it, then open a new shell:
      bash  echo 'eval "$(bakong completion bash)"' >> ~/.bashrc
      zsh   echo 'eval "$(bakong completion zsh)"' >> ~/.zshrc   (after compinit)
      fish  bakong completion fish > ~/.config/fish/completions/bakong.fish

    `bakong` must be on PATH (e.g. `source .venv/bin/activate`). The script calls
    `bakong` with the environment variable _BAKONG_COMPLETE set to ask for completions.
    """
    root = click.get_current_context().find_root().command
    completer = get_completion_class(shell)
    if completer is None:  # click knows the three shells in SHELLS
        raise CliError(f"no completion for {shell}", "unsupported_shell")
    click.echo(completer(root, {}, PROG_NAME, COMPLETE_VAR).source())
