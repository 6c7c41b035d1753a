"""`bakong bench`: committed tx/s and commit latency of a running testnet.

The work is done by cli.bench.run; this module parses options, draws the progress bar on
stderr and prints the summary table (or, with --json, only the JSON on stdout).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.bench.run import BenchConfig, load_target, run_bench
from cli.errors import LAYER_ERRORS, CliError, to_cli_error


class RichProgress:
    """cli.bench.run's progress callbacks drawn as one rich bar per phase, on stderr."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    def on_phase(self, name: str, total: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self._progress.tasks[-1].total)
        self._task = self._progress.add_task(name, total=max(1, total), info="")

    def on_progress(self, done: int, info: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=done, info=info)


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except LAYER_ERRORS as exc:
        raise to_cli_error(exc) from exc


@click.command()
@click.option("--duration", default=30.0, show_default=True, help="Measured window (s).")
@click.option("--rate", default=0, show_default=True, help="Offered tx/s; 0 = as fast as taken.")
@click.option("--accounts", default=200, show_default=True, help="Bench accounts to fund.")
@click.option("--batch", default=500, show_default=True, help="Most txs per request.")
@click.option(
    "--inflight",
    default=2500,
    show_default=True,
    help="Without --rate: most txs sent but not yet committed (0 = no bound).",
)
@click.option("--drain", default=30.0, show_default=True, help="Max wait for stragglers (s).")
@click.option(
    "--node",
    "node_urls",
    multiple=True,
    metavar="URL",
    help="Send load to this node (repeatable; default all nodes of HOME's testnet).",
)
@click.option(
    "--home",
    envvar="BAKONG_HOME",
    default="./testnet",
    type=click.Path(path_type=Path, file_okay=False),
    show_default=True,
    help="Testnet home (env BAKONG_HOME): operator keys, node list and pids.",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON report on stdout.")
def bench(
    duration: float,
    rate: int,
    accounts: int,
    batch: int,
    inflight: int,
    drain: float,
    node_urls: tuple[str, ...],
    home: Path,
    as_json: bool,
) -> None:
    """Measure committed tx/s and commit latency on a running testnet.

    Funds ACCOUNTS fresh accounts, pre-signs the transfers, submits them open loop to
    all nodes for DURATION seconds, times each tx to its block, then checks that every
    counted tx is in the chain exactly once and that all nodes agree. Exits 1 if a
    check fails.
    """
    config = BenchConfig(
        duration_s=duration,
        rate=rate,
        accounts=accounts,
        batch=batch,
        inflight=inflight,
        drain_s=drain,
    )
    with _user_errors():
        target = load_target(home, node_urls)
        report = _run_with_progress(config, target)
    if as_json:
        click.echo(json.dumps(report))
    else:
        Console().print(_summary_table(report))
    checks = report["checks"]
    if not (checks["committed_in_chain"] and checks["nodes_converged"]):
        raise CliError(f"correctness checks failed: {checks}", "bench_check_failed")


def _run_with_progress(config: BenchConfig, target: Any) -> dict[str, Any]:
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description:>12}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        return asyncio.run(run_bench(config, target, RichProgress(progress)))


def _summary_table(report: dict[str, Any]) -> Table:
    lat = report["latency_ms"]
    checks = report["checks"]
    rows = [
        ("committed tx/s (window)", f"{report['tps']:,.1f}"),
        ("offered tx/s", f"{report['offered_tps']:,.1f}"),
        ("pre-signed pool", _pool(report)),
        ("committed", f"{report['committed']:,} of {report['sent']:,} sent"),
        ("latency p50/p95/p99", f"{lat['p50']:,.0f} / {lat['p95']:,.0f} / {lat['p99']:,.0f} ms"),
        ("verification bound", f"{report['verify_bound_tps']:,.0f} tx/s"),
        ("ratio to bound", f"{report['bound_ratio']:.1%}"),
        ("refused at submission", _counts(report["refused"])),
        ("never committed", f"{report['uncommitted']:,} {_counts(report['undecided'])}"),
        ("blocks", _blocks(report["blocks"])),
        ("max RSS (MB)", _counts(report["rss_mb"])),
        ("CPU % of a core over window", _counts(report["cpu_percent"])),
        ("each counted tx in chain once", _yes(checks["committed_in_chain"])),
        ("all nodes converged", _yes(checks["nodes_converged"])),
    ]
    table = Table(title="bakong bench")
    table.add_column("measure")
    table.add_column("value", overflow="fold")
    for name, value in rows:
        table.add_row(name, value)
    return table


def _pool(report: dict[str, Any]) -> str:
    presigned = f"{report['presigned']:,} txs"
    if report.get("pool_exhausted"):
        return f"{presigned}, all sent: the tx/s above is a floor (run shorter)"
    return presigned


def _counts(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items()) or "none"


def _blocks(blocks: dict[str, Any]) -> str:
    return f"{blocks['with_txs']} with txs, mean {blocks['mean_txs']}, max {blocks['max_txs']}"


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"
