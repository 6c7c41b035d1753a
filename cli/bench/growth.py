"""How costs grow with the state and the chain (issue 17's growth target), on testnets of
4 validators + 1 observer on this machine: `scripts/bench_growth`.

In one session: `bakong bench --duration D --json` on a fresh testnet; then another
testnet grown through its API (cli.bench.prefill: N funded accounts, then M transfers
among them) is benched the same way; a validator of the grown testnet is stopped
(SIGTERM), K more transfers commit without it, and it is started again on its store, timed
until its /v1/status answers and until it is caught up; last, each node's data folder is
measured (du) and divided by the txs in the chain. Prints a markdown summary for
docs/performance.md on stdout (progress on stderr), writes the JSON report with
--json-out, and always stops the testnets and removes their temporary homes.

The prefill goes through the running network rather than into the stores offline: the
grown stores are then exactly what a network leaves (blocks with commit certificates,
indexes, state, compaction debt), and nothing of node/ or ledger/ is re-implemented. At
about 2,000 tx/s on 2 cores, 2,000,000 transfers take about 17 minutes.

    scripts/bench_growth [--accounts 1000000] [--prefill 2000000] [--duration 30]
                         [--down-txs 10000] [--skip-fresh] [--json-out FILE] [-- BENCH ARGS]
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final, TypeVar

import click

from cli.bench.prefill import (
    ChainCount,
    Population,
    Prefill,
    format_duration,
)
from cli.bench.run import get_cpu_model, load_target, wait_converged
from cli.devnet.processes import is_process_alive, terminate_all
from cli.devnet.testnet import (
    CONFIG_FILE,
    OUT_FILE,
    PID_FILE,
    NodeEntry,
    TestnetError,
    down_testnet,
    fetch_node_status,
    find_free_base,
    get_log_tail,
    get_node_dir,
    get_node_pid,
    init_testnet,
    load_manifest,
    start_node,
    up_testnet,
)
from cli.errors import LAYER_ERRORS, CliError
from cli.http import AsyncHttp
from ledger.constants import CENTRAL_BANK_CODE
from node.config import load_config
from node.keyfile import read_key_file

ROOT: Final = Path(__file__).resolve().parents[2]
INIT_ATTEMPTS: Final = 5
UP_TIMEOUT_S: Final = 180.0
STOP_GRACE_S: Final = 30.0
KILL_WAIT_S: Final = 5.0
CONVERGE_S: Final = 60.0
HTTP_TIMEOUT_S: Final = 60.0
SERVE_TIMEOUT_S: Final = 300.0
CATCH_UP_TIMEOUT_S: Final = 900.0
POLL_S: Final = 0.05
TAIL_LINES: Final = 15
# the targets of issue 17
TPS_RATIO_TARGET: Final = 0.8
RSS_TARGET_MB: Final = 400.0
SERVE_TARGET_S: Final = 10.0

T = TypeVar("T")


class GrowthError(CliError):
    code = "growth_failed"


@dataclass(frozen=True, slots=True)
class GrowthOptions:
    accounts: int = 1_000_000
    prefill: int = 2_000_000
    duration_s: float = 30.0
    down_txs: int = 10_000  # transfers committed while the restarted validator is down
    validators: int = 4
    observers: int = 1
    skip_fresh: bool = False
    bench_args: tuple[str, ...] = ()
    tmpdir: Path | None = None
    keep_homes: bool = False


OpenTestnet = Callable[[str], AbstractContextManager[Path]]
"""label ("fresh", "grown") -> a context in which a started testnet's home is open."""


# ---------------------------------------------------------------------------------------
# the pipeline


def run_growth(options: GrowthOptions, open_testnet: OpenTestnet) -> dict[str, Any]:
    """The fresh bench (unless skipped), then grow, bench, restart and measure another
    testnet; the JSON report."""
    check_options(options)
    started = time.monotonic()
    report: dict[str, Any] = {
        "machine": describe_machine(),
        "shape": {"validators": options.validators, "observers": options.observers},
        "accounts": options.accounts,
        "prefill": options.prefill,
        "duration_s": options.duration_s,
        "down_txs": options.down_txs,
        "bench_args": list(options.bench_args),
        "fresh": None,
    }
    if not options.skip_fresh:
        say("== fresh testnet")
        with open_testnet("fresh") as home:
            report["fresh"] = measure_fresh(home, options)
    say("== grown testnet")
    with open_testnet("grown") as home:
        report["grown"] = measure_grown(home, options)
    report["summary"] = summarize(report)
    report["wall_s"] = round(time.monotonic() - started, 1)
    return report


def check_options(options: GrowthOptions) -> None:
    if options.accounts < 2 or options.prefill < 0 or options.down_txs < 0:
        raise GrowthError("need --accounts >= 2, --prefill >= 0, --down-txs >= 0", "bad_option")
    if options.duration_s <= 0 or options.validators < 1 or options.observers < 0:
        raise GrowthError("need --duration > 0, validators >= 1, observers >= 0", "bad_option")


def measure_fresh(home: Path, options: GrowthOptions) -> dict[str, Any]:
    bench = run_bench_process(home, options, "fresh")
    count = run_async(lambda session: _counted(session, load_target(home).follow_url, ChainCount()))
    return {"bench": bench, "chain": chain_json(count), "disk": measure_disk(home, count.txs)}


def measure_grown(home: Path, options: GrowthOptions) -> dict[str, Any]:
    prefill, grown = grow(home, options)
    bench = run_bench_process(home, options, "grown")
    restart = measure_restart(home, prefill, options)
    run_async(lambda session: prefill.count.catch_up(session, prefill.follow_url))
    return {
        "prefill": grown,
        "bench": bench,
        "restart": restart,
        "chain": chain_json(prefill.count),
        "disk": measure_disk(home, prefill.count.txs),
    }


def grow(home: Path, options: GrowthOptions) -> tuple[Prefill, dict[str, Any]]:
    """Issue the funding, create the accounts, send the transfers; what it took."""
    target = load_target(home)
    nbc_key = read_key_file(_get_node_dir(home, CENTRAL_BANK_CODE) / "operator_key.json")
    prefill = Prefill(target, Population.new(sorted(target.operators), options.accounts))

    async def setup(session: AsyncHttp) -> float:
        await prefill.fund_banks(session, nbc_key)
        return await prefill.create_accounts(session)

    say(f"creating and funding {options.accounts:,} accounts")
    setup_s = run_async(setup)
    say(f"sending {options.prefill:,} transfers")
    send_s = run_async(
        lambda session: prefill.send_transfers(session, options.prefill, target.urls)
    )
    run_async(lambda session: prefill.count.catch_up(session, prefill.follow_url))
    return prefill, {
        "setup_s": round(setup_s, 1),
        "accounts_per_s": round(options.accounts / setup_s, 1),
        "transfers_s": round(send_s, 1),
        "transfers_tps": round(options.prefill / send_s, 1) if send_s else 0.0,
        "chain": chain_json(prefill.count),
        "rss_max_mb": _to_mb(prefill.rss_kb),
    }


def measure_restart(home: Path, prefill: Prefill, options: GrowthOptions) -> dict[str, Any]:
    """Stop the last validator (SIGTERM), commit `down_txs` transfers without it when the
    others keep a quorum, start it on its store: seconds until it serves, until it is
    caught up; then whether every node agrees."""
    manifest = load_manifest(home)
    node = [n for n in manifest.nodes if n.validator][-1]
    stopped = stop_node(home, node)
    # with n validators the chain commits while floor(2n/3) + 1 of them vote
    down_txs = options.down_txs if manifest.validator_count >= 4 else 0
    others = [n.http_url for n in manifest.nodes if n.name != node.name]
    down_s = 0.0
    if down_txs:
        say(f"restart: {down_txs:,} transfers while {node.name} is down")
        down_started = time.monotonic()
        run_async(lambda session: prefill.send_transfers(session, down_txs, others))
        down_s = time.monotonic() - down_started
    started = time_start(home, node, max(_get_height(url) for url in others))
    if down_txs and down_s > 0:
        # the network's commit rate while the node was down, against the rate at which
        # the restarted node took those txs in: from its start (restart included), and
        # from the moment it served (block sync alone)
        network_tps = down_txs / down_s
        catch_up_s = max(started["caught_up_s"], 0.01)
        sync_s = max(started["caught_up_s"] - started["serving_s"], 0.01)
        started |= {
            "down_s": round(down_s, 2),
            "network_tps": round(network_tps),
            "catch_up_tps": round(down_txs / catch_up_s),
            "catch_up_ratio": round(down_txs / catch_up_s / network_tps, 2),
            "sync_tps": round(down_txs / sync_s),
        }
    prefill.target = load_target(home)
    urls = prefill.target.urls
    converged, statuses = run_async(lambda session: wait_converged(session, urls, CONVERGE_S))
    if not converged:
        heights = ", ".join(f"{s['node']} {s['height']}" for s in statuses)
        raise GrowthError(f"nodes differ {CONVERGE_S:g} s after the restart: {heights}", "diverged")
    return {"node": node.name, **stopped, "down_txs": down_txs, **started}


def stop_node(home: Path, node: NodeEntry) -> dict[str, Any]:
    """SIGTERM (SIGKILL after a grace period) to one node; how long it took, and which."""
    node_dir = get_node_dir(home, node)
    pid = get_node_pid(node_dir)
    if pid is None:
        raise GrowthError(f"{node.name} is not running before its restart", "restart_failed")
    say(f"restart: stopping {node.name}")
    started = time.monotonic()
    outcome = terminate_all({node.name: pid}, STOP_GRACE_S, KILL_WAIT_S)[node.name]
    (node_dir / PID_FILE).unlink(missing_ok=True)
    return {"stop_s": round(time.monotonic() - started, 2), "stop": outcome}


def time_start(home: Path, node: NodeEntry, top: int) -> dict[str, Any]:
    """Start a stopped node on its store: seconds until its /v1/status answers, and until
    it reaches height `top` (where the others are)."""
    node_dir = get_node_dir(home, node)
    say(f"restart: starting {node.name} on its store (the others are at height {top:,})")
    started = time.monotonic()
    pid = start_node(node_dir)
    first = _wait_status(pid, node_dir, node.http_url, lambda s: True, SERVE_TIMEOUT_S)
    serving_s = time.monotonic() - started
    _wait_status(pid, node_dir, node.http_url, lambda s: s["height"] >= top, CATCH_UP_TIMEOUT_S)
    return {
        "height_at_serving": first["height"],
        "height_to_reach": top,
        "serving_s": round(serving_s, 2),
        "caught_up_s": round(time.monotonic() - started, 2),
    }


def _wait_status(
    pid: int,
    node_dir: Path,
    url: str,
    condition: Callable[[dict[str, Any]], bool],
    timeout_s: float,
) -> dict[str, Any]:
    """Poll the node's status until `condition` holds; GrowthError if its process `pid`
    exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = fetch_node_status(url)
        if status is not None and condition(status):
            return status
        if not is_process_alive(pid):
            tail = " | ".join(get_log_tail(node_dir / OUT_FILE, 3))
            raise GrowthError(f"{node_dir.name} exited after its restart: {tail}", "restart_failed")
        if time.monotonic() > deadline:
            raise GrowthError(f"{url}: not there after {timeout_s:g} s", "restart_failed")
        time.sleep(POLL_S)


def _get_height(url: str) -> int:
    status = fetch_node_status(url)
    if status is None:
        raise GrowthError(f"{url} does not answer", "node_down")
    return int(status["height"])


def _get_node_dir(home: Path, bank: str) -> Path:
    return next(get_node_dir(home, n) for n in load_manifest(home).nodes if n.bank == bank)


# ---------------------------------------------------------------------------------------
# measures


def run_bench_process(home: Path, options: GrowthOptions, label: str) -> dict[str, Any]:
    """`bakong bench --duration D --json` on the testnet in `home`: its JSON report. Its
    progress goes to a log beside the home, whose tail is shown when it fails."""
    args = [
        sys.executable, "-m", "cli.main", "bench", "--home", str(home),
        "--duration", f"{options.duration_s:g}", "--json", *options.bench_args,
    ]  # fmt: skip
    say(f"bench ({label}): bakong {' '.join(args[3:])}")
    log = home / "bench.log"
    with log.open("w") as err, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err) as proc:
        try:
            out, _ = proc.communicate()
        finally:
            # Ctrl-C reaches it too; a SIGTERM of this process does not
            if proc.poll() is None:
                proc.kill()
    if proc.returncode != 0 or not out.strip():
        tail = log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
        print("\n".join(f"  | {line}" for line in tail), file=sys.stderr)
        found = next((ln for ln in reversed(tail) if ln.startswith("error: ")), "")
        reason = found.removeprefix("error: ") or "see above"
        raise GrowthError(f"bakong bench on the {label} testnet failed ({reason})", "bench_failed")
    report: dict[str, Any] = json.loads(out)
    say(f"bench ({label}): {report['tps']:,.0f} tx/s, p99 {report['latency_ms']['p99']:,.0f} ms")
    return report


def measure_disk(home: Path, chain_txs: int) -> dict[str, Any]:
    """Bytes on disk (du: allocated blocks) of each node's data folder, and per tx of the
    chain."""
    nodes = {}
    for node in load_manifest(home).nodes:
        config = load_config(get_node_dir(home, node) / CONFIG_FILE)
        size = get_disk_usage(config.data_path)
        nodes[node.name] = {"bytes": size, "bytes_per_tx": round(size / max(1, chain_txs), 1)}
    mean = sum(n["bytes"] for n in nodes.values()) / max(1, len(nodes))
    return {
        "txs": chain_txs,
        "nodes": nodes,
        "mean_bytes": round(mean),
        "mean_bytes_per_tx": round(mean / max(1, chain_txs), 1),
    }


def get_disk_usage(path: Path) -> int:
    """What `du -s` counts: the blocks allocated to every file under `path`."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except FileNotFoundError:
                continue  # LevelDB removed it (compaction) while we walked
    return total


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    grown = report["grown"]
    fresh = report["fresh"]
    grown_tps = grown["bench"]["tps"]
    fresh_tps = fresh["bench"]["tps"] if fresh else None
    ratio = round(grown_tps / fresh_tps, 3) if fresh_tps else None
    rss = max(grown["bench"]["rss_mb"].values(), default=0.0)
    serving_s = grown["restart"]["serving_s"]
    return {
        "fresh_tps": fresh_tps,
        "grown_tps": grown_tps,
        "tps_ratio": ratio,
        "grown_rss_max_mb": rss,
        "grown_bytes_per_tx": grown["disk"]["mean_bytes_per_tx"],
        "restart_serving_s": serving_s,
        "restart_caught_up_s": grown["restart"]["caught_up_s"],
        "targets": {
            "tps_ratio": None if ratio is None else ratio >= TPS_RATIO_TARGET,
            "rss": rss < RSS_TARGET_MB,
            "restart_serving": serving_s < SERVE_TARGET_S,
        },
    }


def chain_json(count: ChainCount) -> dict[str, int]:
    return {"height": count.height, "txs": count.txs}


def _to_mb(kb: dict[str, int]) -> dict[str, float]:
    return {name: round(v / 1024, 1) for name, v in sorted(kb.items())}


async def _counted(session: AsyncHttp, url: str, count: ChainCount) -> ChainCount:
    await count.catch_up(session, url)
    return count


def describe_machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "cpus": os.cpu_count(),
        "cpu_model": get_cpu_model(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "commit": commit or None,
        "started": time.strftime("%Y-%m-%d %H:%M %Z"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


# ---------------------------------------------------------------------------------------
# the markdown summary


def format_markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    shape = report["shape"]
    grown = report["grown"]
    pre = grown["prefill"]
    shape_text = f"{shape['validators']} validators + {shape['observers']} observer"
    bench_cmd = " ".join(["bakong bench --duration", f"{report['duration_s']:g}", "--json",
                          *report["bench_args"]])  # fmt: skip
    lines = [
        f"### Growth: {shape_text}, {report['accounts']:,} accounts, "
        f"{report['prefill']:,} prefilled transfers",
        "",
        f"- machine: {machine['cpu_model']}, {machine['cpus']} cores (os.cpu_count()), "
        f"Python {machine['python']}, {machine['system']}; {machine['started']}, "
        f"commit {machine['commit']}, load average before "
        + ", ".join(f"{x:.2f}" for x in machine["load_average"]),
        f"- shape: {shape_text} on this machine, `bakong testnet init` defaults",
        f"- prefill through the nodes' API: {report['accounts']:,} accounts in "
        f"{format_duration(pre['setup_s'])} ({pre['accounts_per_s']:,.0f} accounts/s), then "
        f"{report['prefill']:,} transfers in {format_duration(pre['transfers_s'])} "
        f"({pre['transfers_tps']:,.0f} tx/s); the chain then held {pre['chain']['txs']:,} txs "
        f"in {pre['chain']['height']:,} blocks; highest node RSS while growing "
        f"{_max(pre['rss_max_mb'])} MB",
        f"- each bench: `{bench_cmd}`"
        + (", on the fresh testnet first, in the same session" if report["fresh"] else ""),
        "",
        "| measure | fresh | grown | grown / fresh | target |",
        "|---|---:|---:|---:|:---|",
        *format_rows(report),
        "",
        "| node | data on disk MB | bytes per committed tx |",
        "|---|---:|---:|",
        *(
            f"| {name} | {n['bytes'] / 1e6:,.1f} | {n['bytes_per_tx']:,.0f} |"
            for name, n in grown["disk"]["nodes"].items()
        ),
    ]
    return "\n".join(lines) + "\n"


def format_rows(report: dict[str, Any]) -> list[str]:
    fresh, grown, summary = report["fresh"], report["grown"], report["summary"]
    restart = grown["restart"]

    def both(get: Callable[[dict[str, Any]], str]) -> tuple[str, str]:
        return (get(fresh) if fresh else "-"), get(grown)

    def latency(side: dict[str, Any]) -> str:
        lat = side["bench"]["latency_ms"]
        return f"{lat['p50']:,.0f} / {lat['p99']:,.0f}"

    ratio = summary["tps_ratio"]
    rows = [
        ("committed tx/s", *both(lambda s: f"{s['bench']['tps']:,.0f}"),
         "-" if ratio is None else f"{ratio:.2f}", f">= {TPS_RATIO_TARGET:.2f} of fresh"),
        ("latency p50 / p99 ms", *both(latency), "", ""),
        ("highest node RSS in the bench, MB", *both(lambda s: _max(s["bench"]["rss_mb"])), "",
         f"< {RSS_TARGET_MB:.0f}"),
        ("txs in the chain at the end", *both(lambda s: f"{s['chain']['txs']:,}"), "", ""),
        ("bytes on disk per committed tx (mean of nodes)",
         *both(lambda s: f"{s['disk']['mean_bytes_per_tx']:,.0f}"), "", ""),
        (f"restart of {restart['node']}: serving after", "-", f"{restart['serving_s']:.2f} s", "",
         f"< {SERVE_TARGET_S:.0f} s"),
        (f"caught up after ({restart['down_txs']:,} txs missed)", "-",
         f"{restart['caught_up_s']:.2f} s", "", ""),
        *([("catch-up: txs taken in per s (start included) / network's tx/s while down",
            "-", f"{restart['catch_up_tps']:,} / {restart['network_tps']:,} = "
            f"{restart['catch_up_ratio']:.2f}x", "", ">= 5x")] if "catch_up_tps" in restart
          else []),
    ]  # fmt: skip
    return ["| " + " | ".join(row) + " |" for row in rows]


def _max(values: dict[str, float]) -> str:
    return f"{max(values.values(), default=0.0):,.0f}"


# ---------------------------------------------------------------------------------------
# temporary testnets


def temporary_testnets(options: GrowthOptions) -> OpenTestnet:
    """Testnets of the options' shape in fresh temporary homes, on free ports."""

    @contextmanager
    def open_testnet(label: str) -> Iterator[Path]:
        home = Path(tempfile.mkdtemp(prefix=f"bakong-growth-{label}.", dir=options.tmpdir))
        try:
            init_on_free_ports(home, options)
            say(f"starting the {label} testnet in {home}")
            up_testnet(home, timeout=UP_TIMEOUT_S)
            yield home
        finally:
            stop_and_remove(home, options.keep_homes)

    return open_testnet


def init_on_free_ports(home: Path, options: GrowthOptions) -> None:
    """Init on a fresh free base; again when another process took a port first."""
    count = options.validators + options.observers
    for attempt in range(INIT_ATTEMPTS):
        try:
            init_testnet(
                home,
                validators=options.validators,
                observers=options.observers,
                base_port=find_free_base(2 * count),
                force=attempt > 0,
            )
            return
        except TestnetError as exc:
            if exc.code != "port_in_use" or attempt == INIT_ATTEMPTS - 1:
                raise


def stop_and_remove(home: Path, keep: bool) -> None:
    """Stop the testnet's nodes and remove its home; the home is kept (and said so) when
    its nodes did not stop, or when asked to."""
    if (home / "testnet.json").exists():
        try:
            down_testnet(home)
        except TestnetError as exc:
            say(f"testnet down failed ({exc.message}); stop it: bakong testnet down --home {home}")
            return
    if keep:
        say(f"testnet home kept: {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# main


def run_async(work: Callable[[AsyncHttp], Coroutine[Any, Any, T]]) -> T:
    """Run `work` with a fresh HTTP session on its own event loop."""

    async def main() -> T:
        async with AsyncHttp(32, HTTP_TIMEOUT_S) as session:
            return await work(session)

    return asyncio.run(main())


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--accounts", default=1_000_000, show_default=True, help="Funded accounts (N).")
@click.option(
    "--prefill", default=2_000_000, show_default=True, help="Transfers committed first (M)."
)
@click.option("--duration", default=30.0, show_default=True, help="Each bench's window (s).")
@click.option(
    "--down-txs",
    default=10_000,
    show_default=True,
    help="Transfers committed while the restarted validator is down.",
)
@click.option("--validators", default=4, show_default=True)
@click.option("--observers", default=1, show_default=True)
@click.option("--skip-fresh", is_flag=True, help="No fresh testnet (no grown/fresh ratio).")
@click.option(
    "--json-out", type=click.Path(path_type=Path, dir_okay=False), help="Write the JSON here."
)
@click.option(
    "--tmpdir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Where the temporary homes go (default $TMPDIR or /tmp).",
)
@click.option("--keep-homes", is_flag=True, help="Keep the (stopped) testnets' homes.")
@click.argument("bench_args", nargs=-1, type=click.UNPROCESSED)
def growth(
    accounts: int,
    prefill: int,
    duration: float,
    down_txs: int,
    validators: int,
    observers: int,
    skip_fresh: bool,
    json_out: Path | None,
    tmpdir: Path | None,
    keep_homes: bool,
    bench_args: tuple[str, ...],
) -> None:
    """Bench a fresh and a grown testnet; restart time and bytes on disk per tx.

    BENCH_ARGS (after --) go to each `bakong bench`.
    """
    options = GrowthOptions(
        accounts, prefill, duration, down_txs, validators, observers, skip_fresh,
        tuple(bench_args), tmpdir, keep_homes,
    )  # fmt: skip
    report = run_growth(options, temporary_testnets(options))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=1) + "\n")
    click.echo(format_markdown(report))


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so the testnets are stopped on the way out."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one line `error: <code>: <message>` and a non-zero exit on failure."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        growth.main(argv, prog_name="bench_growth", standalone_mode=False)
    except click.UsageError as exc:
        click.echo(f"error: usage: {exc.format_message()}", err=True)
        sys.exit(2)
    except CliError as exc:
        exc.show()
        sys.exit(1)
    except LAYER_ERRORS as exc:
        click.echo(f"error: {exc.code}: {exc.message}", err=True)
        sys.exit(1)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("error: aborted: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(f"error: os_error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
