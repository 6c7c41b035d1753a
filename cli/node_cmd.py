"""`bakong node run --home NODE_DIR`: one node in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from cli.devnet import testnet as tn
from cli.devnet.processes import write_pid_file
from cli.errors import CliError, to_cli_error
from node.config import ConfigError


@click.group()
def node() -> None:
    """Run a single node (`bakong testnet up` runs one per bank for you)."""


@node.command("run")
@click.option(
    "--home",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The node's folder, holding node.toml (e.g. testnet/nodes/nbc).",
)
def run_command(home: Path) -> None:
    """Run the node configured in HOME/node.toml in the foreground."""
    config_path = home / tn.CONFIG_FILE
    # a testnet home is a common slip for a node folder: say which to use
    if not config_path.is_file():
        hint = f" (a testnet home: use {home / tn.NODES_DIR}/<name>)" if _is_testnet(home) else ""
        raise CliError(f"no {tn.CONFIG_FILE} in {home}{hint}", "config_not_found")
    # two processes on one store and one signing state would equivocate
    running = tn.get_node_pid(home)
    if running is not None and running != os.getpid():
        raise CliError(f"a node of {home} already runs as pid {running}", "node_running")
    from node.main import run_node

    with _pid_file(home):
        try:
            run_node(config_path)
        except ConfigError as exc:
            raise to_cli_error(exc) from exc


def _is_testnet(home: Path) -> bool:
    return (home / tn.MANIFEST_FILE).is_file()


@contextmanager
def _pid_file(node_dir: Path) -> Iterator[None]:
    """Record our pid so `testnet status`/`down` see a node started by hand too; `up`
    writes the same pid for the nodes it starts."""
    path = node_dir / tn.PID_FILE
    pid = str(os.getpid())
    write_pid_file(path, os.getpid())
    try:
        yield
    finally:
        # a later node of this folder may have replaced our pid file
        if path.is_file() and path.read_text().strip() == pid:
            path.unlink()
