"""`bakong testnet init|up|status|down`: a multi-node network on this machine.

The work is done by cli.devnet.testnet; this module parses options, writes the wallet
(handed to the manager as a callback) and prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from cli.devnet import testnet as tn
from cli.errors import LAYER_ERRORS, to_cli_error
from cli.keystore import DEV_PASSPHRASE, Keystore
from cli.options import home_option
from ledger.crypto import PrivateKey
from ledger.ids import AccountId
from node.config import ConsensusConfig


@contextmanager
def _user_errors() -> Iterator[None]:
    """Show the failing nodes' logs before `up`'s one-line error; turn the lower layers'
    errors (a bad genesis, a bad node config...) into the one-line CliError."""
    try:
        yield
    except tn.TestnetNotReady as exc:
        for path, lines in exc.log_tails:
            click.echo(f"--- last lines of {path}", err=True)
            for line in lines:
                click.echo(f"    {line}", err=True)
        raise
    except LAYER_ERRORS as exc:
        raise to_cli_error(exc) from exc


def write_wallet(home: Path, keys: Mapping[AccountId, PrivateKey]) -> None:
    """Store the operators' keys under the development passphrase, and mark the home so
    the CLI uses that passphrase without asking (see cli/keystore.py)."""
    keystore = Keystore(home)
    for account, key in keys.items():
        keystore.save(account, key, DEV_PASSPHRASE)
    keystore.mark_dev_passphrase()


@click.group()
def testnet() -> None:
    """A local testnet: one process per bank node, all on 127.0.0.1.

    `init` lays out HOME (genesis, node folders, a wallet with the operators' keys;
    with --tls a CA and one HTTPS certificate per node), `up` starts the nodes and
    waits until they serve, `status` shows them, `down` stops them.
    """


@testnet.command("init")
@click.option(
    "--validators",
    type=int,
    default=tn.DEFAULT_VALIDATORS,
    show_default=True,
    help="Validator banks, the central bank nbc included.",
)
@click.option(
    "--observers",
    type=int,
    default=tn.DEFAULT_OBSERVERS,
    show_default=True,
    help="Banks whose nodes follow the chain without voting.",
)
@click.option(
    "--base-port",
    type=int,
    default=tn.DEFAULT_BASE_PORT,
    show_default=True,
    help="Node i listens for P2P on base+2i and HTTP on base+2i+1.",
)
@click.option("--chain-id", default=tn.DEFAULT_CHAIN_ID, show_default=True)
@click.option("--force", is_flag=True, help="Stop the nodes of an existing testnet and wipe it.")
@click.option(
    "--tls",
    is_flag=True,
    help="Serve the nodes' HTTP API over HTTPS, with certificates of a CA made for this "
    "testnet (HOME/tls/ca.crt), which the CLI trusts for HOME.",
)
@home_option
def init_command(
    validators: int,
    observers: int,
    base_port: int,
    chain_id: str,
    force: bool,
    tls: bool,
    home: Path,
) -> None:
    """Create a new testnet in HOME."""
    with _user_errors():
        manifest = tn.init_testnet(
            home,
            validators=validators,
            observers=observers,
            base_port=base_port,
            chain_id=chain_id,
            consensus=ConsensusConfig(),
            force=force,
            wallet=write_wallet,
            tls=tls,
        )
    click.echo(
        f"created testnet {manifest.chain_id} in {home}: validators {manifest.validator_count},"
        f" observers {len(manifest.nodes) - manifest.validator_count}"
    )
    if tls:
        _print_trust(tn.get_ca_path(home), manifest.nodes[0].http_url)
    click.echo(f"start it with: bakong testnet up --home {home}")


def _print_trust(ca: Path, url: str) -> None:
    ca = ca.absolute()
    click.echo(f"the nodes serve HTTPS with certificates of the CA {ca}; to trust it:")
    click.echo(f"  bakong (this home):  trusted already; elsewhere: bakong --cacert {ca} ...")
    click.echo(f"  Python, OpenSSL:     export SSL_CERT_FILE={ca}")
    click.echo(f"  curl:                curl --cacert {ca} {url}/v1/status")


@testnet.command("up")
@click.option(
    "--timeout",
    type=float,
    default=tn.DEFAULT_UP_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for every node to serve.",
)
@home_option
def up_command(timeout: float, home: Path) -> None:
    """Start every node that is not running and wait until all serve (idempotent)."""
    console = Console(stderr=True)
    with _user_errors(), console.status("starting nodes...") as spinner:
        status = tn.up_testnet(home, timeout=timeout, progress=spinner.update)
    _print_table(status, "testnet is up")


@testnet.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@home_option
def status_command(as_json: bool, home: Path) -> None:
    """Show each node: process, height and hashes (null when it does not answer)."""
    with _user_errors():
        status = tn.get_testnet_status(home)
    if as_json:
        click.echo(json.dumps(status.to_json()))
    else:
        _print_table(status, f"testnet {status.chain_id}")


@testnet.command("down")
@click.option(
    "--timeout",
    type=float,
    default=tn.DEFAULT_DOWN_GRACE_S,
    show_default=True,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)
@home_option
def down_command(timeout: float, home: Path) -> None:
    """Stop every node (SIGTERM, then SIGKILL after the timeout)."""
    with _user_errors():
        results = tn.down_testnet(home, grace=timeout)
    for result in results:
        pid = f" (pid {result.pid})" if result.pid is not None else ""
        click.echo(f"{result.name}: {result.outcome.replace('_', ' ')}{pid}")


def _print_table(status: tn.TestnetStatus, title: str) -> None:
    table = Table(title=title)
    for column in ("name", "bank", "validator", "url", "pid", "height", "block hash"):
        table.add_column(column)
    for node in status.nodes:
        table.add_row(
            node.name,
            node.bank,
            "yes" if node.validator else "no",
            node.url,
            str(node.pid) if node.pid is not None else "stopped",
            str(node.height) if node.height is not None else "-",
            (node.block_hash or "-")[:16],
        )
    Console().print(table)
