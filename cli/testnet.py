"""`bakong testnet init|up|status|down`: a multi-node network on this machine.

The work is done by cli.devnet.testnet; this module parses options, writes the wallet
(handed to the manager as a callback) and prints.

`testnet status` exits 0 when every node runs and serves its API, else
`EXIT_NODES_DOWN` (3) after printing the status (the JSON too, with --json) and one
line `error: nodes_down: ...` on stderr. Its table (and `up`'s) fits the console: the
columns are chosen by width (see `status_table`).
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import click
from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.live import Live
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from cli.devnet import testnet as tn
from cli.errors import LAYER_ERRORS, to_cli_error
from cli.keystore import DEV_PASSPHRASE, PASSPHRASE_ENV, Keystore
from cli.options import home_option
from ledger.crypto import PrivateKey
from ledger.ids import AccountId
from node.config import ConsensusConfig

EXIT_NODES_DOWN: Final = 3
DEFAULT_WATCH_INTERVAL_S: Final = 1.0
SHORT_HASH: Final = 16
_UNBOUNDED: Final = 10_000


class NodesDown(tn.TestnetError):
    """Some node is stopped or does not answer: `testnet status` exits 3."""

    code = "nodes_down"
    exit_code = EXIT_NODES_DOWN


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


def write_wallet(
    home: Path, keys: Mapping[AccountId, PrivateKey], passphrase: str | None = None
) -> None:
    """Store the operators' keys under `passphrase`; without one, under the development
    passphrase, and mark the home so the CLI uses it without asking (cli/keystore.py)."""
    keystore = Keystore(home)
    for account, key in keys.items():
        keystore.save(account, key, passphrase or DEV_PASSPHRASE)
    if not passphrase:
        keystore.mark_dev_passphrase()


@click.group()
def testnet() -> None:
    """A testnet: one process per bank node, on 127.0.0.1 or (--hosts) on several hosts.

    `init` lays out HOME (genesis, node folders, a wallet with the operators' keys;
    with --tls a CA and one HTTPS certificate per node), `up` starts the nodes and
    waits until they serve, `status` shows them, `down` stops them. `bundle` packs each
    node's home with a systemd unit and a compose file, to run on its own host.
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
    help="Node i listens for P2P on base+2i and HTTP on base+2i+1; with --hosts or "
    "--hosts-file every node listens on base (P2P) and base+1 (HTTP) of its own host.",
)
@click.option("--chain-id", default=tn.DEFAULT_CHAIN_ID, show_default=True)
@click.option("--force", is_flag=True, help="Stop the nodes of an existing testnet and wipe it.")
@click.option(
    "--tls",
    is_flag=True,
    help="Serve the nodes' HTTP API over HTTPS, with certificates of a CA made for this "
    "testnet (HOME/tls/ca.crt), which the CLI trusts for HOME; with --hosts each "
    "certificate names its node's host.",
)
@click.option(
    "--hosts",
    "hosts_list",
    metavar="H1,H2,...",
    help="One IPv4/IPv6 address or DNS name per node, in node order: validators first "
    "(nbc, then the banks), then observers. Each node listens on its host and dials its "
    "peers at theirs (a network across machines; see `testnet bundle`).",
)
@click.option(
    "--hosts-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Like --hosts, as `bank=host` lines (# comments, blank lines ok), every node "
    "named exactly once.",
)
@home_option
def init_command(
    validators: int,
    observers: int,
    base_port: int,
    chain_id: str,
    force: bool,
    tls: bool,
    hosts_list: str | None,
    hosts_file: Path | None,
    home: Path,
) -> None:
    """Create a new testnet in HOME.

    The operators' keys go to HOME/wallet encrypted with BAKONG_PASSPHRASE when it is
    set, else with the published development passphrase (bakong-dev).

    With --hosts or --hosts-file the nodes run on several machines: pack each one's
    home with `bakong testnet bundle --out DIR` and start it there (docs/deploy.md).
    `testnet up` starts such a testnet on this machine only if its addresses are local.
    """
    # empty counts as unset, as everywhere the CLI reads the variable
    passphrase = os.environ.get(PASSPHRASE_ENV) or None
    with _user_errors():
        hosts = _read_hosts(hosts_list, hosts_file)
        manifest = tn.init_testnet(
            home,
            validators=validators,
            observers=observers,
            base_port=base_port,
            chain_id=chain_id,
            consensus=ConsensusConfig(),
            force=force,
            wallet=functools.partial(write_wallet, passphrase=passphrase),
            tls=tls,
            hosts=hosts,
        )
    click.echo(
        f"created testnet {manifest.chain_id} in {home}: validators {manifest.validator_count},"
        f" observers {len(manifest.nodes) - manifest.validator_count}"
    )
    if hosts is not None:
        for node in manifest.nodes:
            click.echo(f"  {node.name}: p2p {node.p2p_address}, api {node.http_url}")
    if passphrase:
        click.echo(f"wallet: the operators' keys are encrypted with ${PASSPHRASE_ENV}")
    else:
        click.echo(f"wallet: the operators' keys use the development passphrase {DEV_PASSPHRASE}")
    if tls:
        _print_trust(tn.get_ca_path(home), manifest.nodes[0].http_url)
    if hosts is not None:
        click.echo(
            f"pack each node for its host with: bakong testnet bundle --home {home} --out DIR"
        )
    else:
        click.echo(f"start it with: bakong testnet up --home {home}")


def _read_hosts(
    hosts_list: str | None, hosts_file: Path | None
) -> list[str] | dict[str, str] | None:
    """--hosts as a list (blanks around commas ignored), --hosts-file as bank -> host."""
    if hosts_list is not None and hosts_file is not None:
        raise tn.TestnetError("give --hosts or --hosts-file, not both", "bad_hosts")
    if hosts_file is not None:
        return tn.read_hosts_file(hosts_file)
    if hosts_list is None:
        return None
    hosts = [host.strip() for host in hosts_list.split(",")]
    if any(not host for host in hosts):
        raise tn.TestnetError(
            f"--hosts {hosts_list!r} has an empty entry; give H1,H2,... one per node", "bad_hosts"
        )
    return hosts


def _print_trust(ca: Path, url: str) -> None:
    ca = ca.absolute()
    click.echo(f"the nodes serve HTTPS with certificates of the CA {ca}; to trust it:")
    click.echo(f"  bakong (this home):  trusted already; elsewhere: bakong --cacert {ca} ...")
    click.echo(f"  Python, OpenSSL:     export SSL_CERT_FILE={ca}")
    click.echo(f"  curl:                curl --cacert {ca} {url}/v1/status")


@testnet.command("bundle")
@click.option(
    "--out",
    required=True,
    # not file_okay=False: an existing file is our one-line bundle_exists
    type=click.Path(path_type=Path),
    help="Folder to write: one subfolder per node, to copy to that node's host.",
)
@click.option("--force", is_flag=True, help="Replace an existing bundle in --out.")
@click.option(
    "--source",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="The project's source tree to package (default: the one bakong runs from).",
)
@home_option
def bundle_command(out: Path, force: bool, source: Path | None, home: Path) -> None:
    """Pack each node of HOME for its own host (after `init --hosts`).

    OUT/<node>/ holds the node's home (node.toml, genesis, its own keys and TLS files:
    nothing of the other nodes, not the wallet, not the CA key), a systemd unit
    bakong-<node>.service (user bakong, home /var/lib/bakong/<node>), and compose.yaml
    with a Containerfile (and Dockerfile) that installs the package from src/.
    OUT/README.md says how to start each node with systemctl or `docker compose up`.
    Folders are 0700, secrets 0600. An existing non-empty OUT is refused unless
    --force (which replaces only a former bundle).
    """
    from cli.devnet.bundle import bundle_testnet

    with _user_errors():
        bundle = bundle_testnet(home, out, force=force, source=source)
    for node in bundle.nodes:
        click.echo(f"{node.name}: {node.dir} (for {node.host}; {node.unit_name}, compose.yaml)")
    if bundle.local_only:
        click.echo(
            "warning: every node listens on 127.0.0.1 (made without --hosts): they reach each "
            "other only on one machine",
            err=True,
        )
    click.echo(f"how to start each node on its host: {bundle.out / 'README.md'}")


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
    out = Console()
    out.print(status_table(status, "testnet is up", out.width))


@testnet.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option(
    "--watch",
    is_flag=True,
    help="Refresh until Ctrl-C (with --json: one JSON object per line and refresh).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_WATCH_INTERVAL_S,
    show_default=True,
    help="Seconds between refreshes of --watch.",
)
@home_option
def status_command(as_json: bool, watch: bool, interval: float, home: Path) -> None:
    """Show each node: state, height, round, peers, mempool, URL, process and hashes.

    A node's state is `serving`, `catching up` (its height is 3 or more blocks below the
    highest of the others: it is fetching blocks it missed), `not serving` (its process
    runs, its API does not answer) or `stopped`. Exit status 0 when every node runs and
    serves, 3 (`nodes_down`) when some node does not, after printing the status.
    --watch refreshes in place until Ctrl-C (exit 0).
    """
    get_status = functools.partial(_get_status, home)
    if watch:
        _watch(get_status, interval, as_json)
        return
    status = get_status()
    if as_json:
        click.echo(json.dumps(status.to_json()))
    else:
        console = Console()
        console.print(status_table(status, f"testnet {status.chain_id}", console.width))
        console.print(summary_line(status))
    if not status.healthy:
        raise NodesDown(describe_down(status))


def _get_status(home: Path) -> tn.TestnetStatus:
    with _user_errors():
        return tn.get_testnet_status(home)


def describe_down(status: tn.TestnetStatus) -> str:
    down = [n for n in status.nodes if not n.serving]
    names = ", ".join(f"{n.name} ({n.state})" for n in down)
    return f"{len(down)} of {len(status.nodes)} nodes do not serve: {names}"


def summary_line(status: tn.TestnetStatus) -> str:
    serving = sum(1 for n in status.nodes if n.serving)
    height = "-" if status.height is None else str(status.height)
    line = f"{serving} of {len(status.nodes)} nodes serving, height {height}"
    behind = [n.name for n in status.nodes if n.catching_up]
    if behind:
        line += f"; catching up ({tn.CATCHING_UP_BLOCKS}+ blocks behind): {', '.join(behind)}"
    return line


def _watch(get_status: Callable[[], tn.TestnetStatus], interval: float, as_json: bool) -> None:
    """Print the status every `interval` seconds until Ctrl-C, which ends it with exit 0."""
    try:
        if as_json:
            while True:
                click.echo(json.dumps(get_status().to_json()))
                time.sleep(interval)
        console = Console()
        with Live(console=console, auto_refresh=False) as live:
            while True:
                status = get_status()
                live.update(_watch_view(status, console.width, interval), refresh=True)
                time.sleep(interval)
    except KeyboardInterrupt:
        return


def _watch_view(status: tn.TestnetStatus, width: int, interval: float) -> RenderableType:
    now = datetime.now().astimezone().strftime("%H:%M:%S")
    header = Text.assemble(
        (f"testnet {status.chain_id}", "bold"),
        f"  {now}, every {interval:g}s  Ctrl-C to stop",
    )
    return Group(header, status_table(status, None, width), Text(summary_line(status)))


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


# ---------------------------------------------------------------------------------------
# the status table

_STATE_STYLES: Final = {
    "serving": "green",
    "catching up": "yellow",
    "not serving": "red",
    "stopped": "red",
}


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    cell: Callable[[tn.NodeStatus], str]
    justify: JustifyMethod = "left"


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


def _host_port(url: str) -> str:
    return urlsplit(url).netloc or url


def _state_cell(node: tn.NodeStatus) -> str:
    return f"[{_STATE_STYLES[node.state]}]{node.state}[/]"


def _mempool_cell(node: tn.NodeStatus) -> str:
    if node.mempool is None:
        return "-"
    queued = node.mempool_queued or 0
    return f"{node.mempool}+{queued}" if queued else str(node.mempool)


COLUMNS: Final[Mapping[str, Column]] = {
    "node": Column("node", lambda n: n.name),
    "bank": Column("bank", lambda n: n.bank),
    "role": Column("role", lambda n: "validator" if n.validator else "observer"),
    "state": Column("state", _state_cell),
    "height": Column("height", lambda n: _number(n.height), "right"),
    "round": Column("round", lambda n: _number(n.round), "right"),
    "peers": Column("peers", lambda n: _number(n.peers), "right"),
    "mempool": Column("mempool", _mempool_cell, "right"),
    "address": Column("address", lambda n: _host_port(n.url)),
    "url": Column("url", lambda n: n.url),
    "pid": Column("pid", lambda n: _number(n.pid), "right"),
    "block hash": Column("block hash", lambda n: (n.block_hash or "-")[:SHORT_HASH]),
    "state hash": Column("state hash", lambda n: (n.state_hash or "-")[:SHORT_HASH]),
}
# The order in which columns are kept as long as the table fits the console (a URL is
# shown whole or as host:port, never cut), and the order they are shown in.
PRIORITY: Final = (
    "node", "bank", "state", "height", "address", "peers", "round", "mempool", "role", "pid",
    "block hash", "state hash",
)  # fmt: skip
ORDER: Final = (
    "node", "bank", "role", "state", "height", "round", "peers", "mempool", "address", "url",
    "pid", "block hash", "state hash",
)  # fmt: skip


def status_table(status: tn.TestnetStatus, title: str | None, width: int) -> Table:
    """The nodes as a table no wider than `width` where it can be: columns by PRIORITY
    while they fit, then host:port widened to the whole URL if that fits too. (Rich
    would squeeze and wrap cells instead, which cuts a URL.) The mempool column reads
    `pending+queued` when txs wait behind a nonce gap."""
    # measured unbounded: a measurement is capped at the console's width
    console = Console(width=_UNBOUNDED)
    # a node is named after its bank, unless someone edited the manifest
    named_apart = any(n.bank != n.name for n in status.nodes)
    priority = [k for k in PRIORITY if k != "bank" or named_apart]
    chosen: list[str] = []
    for key in priority:
        if _fits(console, status, title, [*chosen, key], width):
            chosen.append(key)
    if "address" in chosen:
        widened = [("url" if key == "address" else key) for key in chosen]
        if _fits(console, status, title, widened, width):
            chosen = widened
    return _build_table(status, title, chosen or ["node"])


def _fits(
    console: Console, status: tn.TestnetStatus, title: str | None, keys: Sequence[str], width: int
) -> bool:
    table = _build_table(status, title, keys)
    return Measurement.get(console, console.options, table).maximum <= width


def _build_table(status: tn.TestnetStatus, title: str | None, keys: Sequence[str]) -> Table:
    shown = [key for key in ORDER if key in keys]
    table = Table(title=title)
    for key in shown:
        column = COLUMNS[key]
        table.add_column(column.header, justify=column.justify, no_wrap=True)
    for node in status.nodes:
        table.add_row(*(COLUMNS[key].cell(node) for key in shown))
    return table
