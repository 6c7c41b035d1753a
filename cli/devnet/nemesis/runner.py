"""`scripts/nemesis`: a 4+1 network in namespaces, the bank workload, a schedule of
faults, the heal, the checks, and the report directory:

    OUT/history.jsonl     every operation, fault and observation (see `history`)
    OUT/checks.json       each check's verdict, `valid`, a summary of the run
    OUT/timeline.png      acked txs/s and blocks/s, fault windows shaded
    OUT/chains.json       the agreed chain (hash, time, proposer, txs) and every node's hashes
    OUT/testnet/          the testnet home: configs, keys, node logs (node.log, node.out)

Exit status: 0 when every check holds, 1 on any violation, 2 when the run itself
could not be made (no root, a node that never started; one `error:` line).
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import click

from cli.devnet.nemesis import checker, plot
from cli.devnet.nemesis.cluster import Cluster
from cli.devnet.nemesis.faults import FAULT_KINDS, Nemesis
from cli.devnet.nemesis.history import History, load_history
from cli.devnet.nemesis.netns import unusable_reason
from cli.devnet.nemesis.workload import (
    Nodes,
    Observer,
    read_at_one_height,
    setup_accounts,
    start_clients,
)
from cli.errors import CliError
from genesis.load import load_genesis_file
from node.keyfile import read_key_file

DEFAULT_FAULTS: Final = ("partition", "kill", "pause", "skew")
DEFAULT_DISK_MB: Final = 256
_CONVERGE_TIMEOUT_S: Final = 90.0
_PAGE: Final = 1000

Progress = Callable[[str], None]


@dataclass
class Options:
    out: Path
    duration: float = 60.0
    faults: tuple[str, ...] = DEFAULT_FAULTS
    seed: int = 0
    clients: int = 8
    accounts: int = 8
    initial: int = 10_000_000
    fault_s: tuple[float, float] = (5.0, 8.0)
    quiet_s: tuple[float, float] = (4.0, 6.0)
    recovery_s: float = 10.0
    op_timeout_s: float = 10.0
    liveness_bound_s: float = checker.DEFAULT_LIVENESS_BOUND_S
    p2p: dict[str, int] = field(default_factory=dict)
    # each node's data directory is a tmpfs this large when the disk fault is on
    disk_mb: int = DEFAULT_DISK_MB

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["out"] = str(self.out)
        return out


def run(options: Options, progress: Progress = lambda line: None) -> dict[str, Any]:
    """One nemesis run; the checker's result (also written to OUT/checks.json)."""
    unknown = [f for f in options.faults if f not in FAULT_KINDS]
    if unknown:
        raise CliError(
            f"unknown faults {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}", "bad_faults"
        )
    reason = unusable_reason()
    if reason is not None:
        raise CliError(reason, "netns_unavailable")
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    history = History(out / "history.jsonl")
    history.add("config", value=options.to_json())
    rng = random.Random(options.seed)
    disk = options.disk_mb * 1024 * 1024 if "disk" in options.faults else None
    run_id = None
    try:
        with Cluster.create(out, p2p=options.p2p, disk_bytes=disk) as cluster:
            run_id = cluster.network.run_id
            history.add("network", value={"run_id": run_id, "subnet": cluster.network.subnet})
            progress(
                f"network {cluster.network.run_id}: {len(cluster.names)} nodes on "
                f"{cluster.network.subnet}.0/24, home {cluster.home}"
            )
            cluster.start_all()
            data = _exercise(cluster, options, history, rng, progress)
    finally:
        history.close()
    params = checker.Params(
        max_clock_skew_ms=data.final.get("max_clock_skew_ms", 60_000),
        liveness_bound_s=options.liveness_bound_s,
    )
    progress("checking")
    result = checker.check(data, params)
    result["run"] = {"seed": options.seed, "duration_s": options.duration,
                     "faults": list(options.faults), "run_id": run_id}  # fmt: skip
    (out / "checks.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    (out / "chains.json").write_text(
        json.dumps({"blocks": data.blocks, "chains": data.chains}, sort_keys=True) + "\n"
    )
    plot.draw_timeline(data.records, out / "timeline.png")
    return result


def _exercise(
    cluster: Cluster, options: Options, history: History, rng: random.Random, progress: Progress
) -> checker.RunData:
    nodes = Nodes({name: cluster.url(name) for name in cluster.names})
    chain_id = cluster.manifest.chain_id
    genesis = load_genesis_file(cluster.home / "genesis.json")
    operators = {
        node.bank: read_key_file(node.dir / "operator_key.json")
        for node in cluster.nodes.values()
        if node.bank != genesis.central_bank
    }
    accounts = setup_accounts(
        nodes, chain_id, operators, options.accounts, options.initial, history
    )
    progress(f"{len(accounts)} accounts funded; workload of {options.clients} clients")
    observer = Observer(nodes, history)
    observer.start()
    stop_clients = threading.Event()
    stop_nemesis = threading.Event()
    clients = start_clients(
        nodes,
        chain_id,
        accounts,
        history,
        stop_clients,
        clients=options.clients,
        seed=options.seed,
        op_timeout=options.op_timeout_s,
    )
    nemesis = Nemesis(
        cluster, history, observer, rng, max_clock_skew_ms=genesis.params.max_clock_skew_ms
    )
    try:
        try:
            # a short run-in without faults, then the schedule
            stop_nemesis.wait(2.0)
            until = time.monotonic() + options.duration
            progress(f"nemesis: {', '.join(options.faults)} for {options.duration:g}s")
            nemesis.run(
                options.faults, until, fault_s=options.fault_s, quiet_s=options.quiet_s,
                stop=stop_nemesis,
            )  # fmt: skip
        except Exception as exc:
            # a failure of the nemesis itself: recorded (the check fails), healed, and the
            # run still checked, so a long soak keeps what it found
            history.add("nemesis_error", error=repr(exc)[:500], trace=traceback.format_exc())
            progress(f"the nemesis failed: {exc!r}; healing and checking what ran")
        finally:
            nemesis.heal_all()
            history.add("nemesis", f="healed_all")
        progress(f"healed; {options.recovery_s:g}s of workload to recover")
        stop_clients.wait(options.recovery_s)
    finally:
        stop_clients.set()
        for client in clients:
            client.join(timeout=options.op_timeout_s + 15)
        if any(client.is_alive() for client in clients):
            history.add("client_error", process=-1, error="a client did not stop")
    progress("workload stopped; waiting for the nodes to converge")
    try:
        final = _wait_converged(cluster, accounts=[a.id for a in accounts], nodes=nodes)
    finally:
        observer.stop()
    final["max_clock_skew_ms"] = genesis.params.max_clock_skew_ms
    history.add("final", f="converged", value=final)
    progress(f"converged: {final['converged']} in {final['converge_s']}s; reading chains")
    chains, blocks = read_chains(cluster)
    return checker.RunData(history.records, chains, blocks, final)


def _wait_converged(cluster: Cluster, accounts: list[str], nodes: Nodes) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + _CONVERGE_TIMEOUT_S
    statuses: dict[str, Any] = {}
    converged = False
    with ThreadPoolExecutor(max_workers=len(cluster.names)) as pool:
        while time.monotonic() < deadline:
            statuses = dict(
                zip(cluster.names, pool.map(cluster.status, cluster.names), strict=True)
            )
            keys = {
                (s["height"], s["block_hash"], s["state_hash"]) if s else None
                for s in statuses.values()
            }
            if len(keys) == 1 and None not in keys:
                converged = True
                break
            time.sleep(0.25)
    final: dict[str, Any] = {
        "converged": converged,
        "converge_s": round(time.monotonic() - started, 3),
        "statuses": {
            name: {k: s.get(k) for k in ("height", "block_hash", "state_hash")} if s else None
            for name, s in statuses.items()
        },
    }
    # the final balances, read on every node: each a read at one height
    final["reads"] = {name: read_at_one_height(nodes, name, accounts) for name in cluster.names}
    return final


def read_chains(cluster: Cluster) -> tuple[dict[str, dict[int, str]], dict[int, dict[str, Any]]]:
    """Every node's height -> block hash, and the blocks of the highest node's chain with
    their tx hashes."""
    headers: dict[str, dict[int, dict[str, Any]]] = {}
    for name in cluster.names:
        headers[name] = {}
        start = 1
        while True:
            page = cluster.get(name, f"/v1/blocks?from={start}&limit={_PAGE}", timeout=30.0)
            if not isinstance(page, dict) or not page.get("blocks"):
                break
            for block in page["blocks"]:
                headers[name][block["height"]] = block
            start = max(headers[name]) + 1
            if start > page.get("height", 0):
                break
    chains = {name: {h: b["hash"] for h, b in blocks.items()} for name, blocks in headers.items()}
    source = max(headers, key=lambda name: len(headers[name]))
    blocks: dict[int, dict[str, Any]] = {}
    for height, header in sorted(headers[source].items()):
        txs: list[str] = []
        if header.get("txs"):
            body = cluster.get(source, f"/v1/blocks/{height}?view=hashes", timeout=30.0)
            txs = list(body["tx_hashes"]) if isinstance(body, dict) else []
        blocks[height] = {
            "hash": header["hash"],
            "time": header["time"],
            "proposer": header["proposer"],
            "txs": txs,
        }
    return chains, blocks


def recheck(out: Path, liveness_bound_s: float | None = None) -> dict[str, Any]:
    """The checks again over a report directory's history.jsonl and chains.json (after
    a change to the checker); rewrites checks.json and timeline.png."""
    records = load_history(out / "history.jsonl")
    saved = json.loads((out / "chains.json").read_text())
    chains = {n: {int(h): b for h, b in c.items()} for n, c in saved["chains"].items()}
    blocks = {int(h): b for h, b in saved["blocks"].items()}

    def first(type_: str) -> dict[str, Any]:
        found: dict[str, Any] = next((r["value"] for r in records if r["type"] == type_), {})
        return found

    final, config, network = first("final"), first("config"), first("network")
    bound = liveness_bound_s or config.get("liveness_bound_s", checker.DEFAULT_LIVENESS_BOUND_S)
    params = checker.Params(
        max_clock_skew_ms=final.get("max_clock_skew_ms", 60_000), liveness_bound_s=bound
    )
    result = checker.check(checker.RunData(records, chains, blocks, final), params)
    result["run"] = {"seed": config.get("seed"), "duration_s": config.get("duration"),
                     "faults": config.get("faults"), "run_id": network.get("run_id")}  # fmt: skip
    (out / "checks.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    plot.draw_timeline(records, out / "timeline.png")
    return result


# ---------------------------------------------------------------------------------------
# the command


def _recheck(out: Path, liveness_bound: float) -> dict[str, Any]:
    try:
        return recheck(out, liveness_bound)
    except (OSError, ValueError, KeyError) as exc:
        raise CliError(f"cannot check {out} again: {exc!r}", "bad_report") from exc


def _parse_range(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    a, b = float(low), float(high or low)
    if a <= 0 or b < a:
        raise click.BadParameter(f"expected MIN,MAX seconds with 0 < MIN <= MAX, got {text!r}")
    return a, b


def _parse_p2p(values: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for value in values:
        key, sep, number = value.partition("=")
        if not sep or not number.isdigit():
            raise click.BadParameter(f"expected KEY=MILLISECONDS, got {value!r}")
        out[key] = int(number)
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--duration", type=float, default=60.0, show_default=True, help="Seconds of faults.")
@click.option(
    "--faults",
    default=",".join(DEFAULT_FAULTS),
    show_default=True,
    help=f"Comma-separated fault kinds: {', '.join(FAULT_KINDS)}.",
)
@click.option("--seed", type=int, default=None, help="Random seed (default: a random one).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Report directory.")
@click.option("--clients", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--accounts", type=click.IntRange(2, 500), default=8, show_default=True)
@click.option("--fault-seconds", default="5,8", show_default=True, help="MIN,MAX per fault.")
@click.option("--quiet-seconds", default="4,6", show_default=True, help="MIN,MAX after a heal.")
@click.option("--liveness-bound", type=float, default=checker.DEFAULT_LIVENESS_BOUND_S,
              show_default=True, help="Seconds from a heal to the first commit.")  # fmt: skip
@click.option("--p2p", "p2p", multiple=True, help="node.toml [p2p] KEY=MS for every node.")
@click.option("--recheck", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=None, help="Only check an earlier run's report directory again.")  # fmt: skip
@click.option("--disk-mb", type=click.IntRange(16, 65536), default=DEFAULT_DISK_MB,
              show_default=True, help="Size of each node's tmpfs (disk fault).")  # fmt: skip
def main(
    duration: float,
    faults: str,
    seed: int | None,
    out: Path | None,
    clients: int,
    accounts: int,
    fault_seconds: str,
    quiet_seconds: str,
    liveness_bound: float,
    p2p: tuple[str, ...],
    recheck: Path | None,
    disk_mb: int,
) -> None:
    """Run the bank workload under a schedule of faults on a 4+1 network in network
    namespaces (root), heal, check, and write a report; exit 1 on any violation."""
    seed = seed if seed is not None else random.randrange(2**31)
    out = out or Path(f"nemesis-{time.strftime('%Y%m%d-%H%M%S')}")
    options = Options(
        out=out,
        duration=duration,
        faults=tuple(f.strip() for f in faults.split(",") if f.strip()),
        seed=seed,
        clients=clients,
        accounts=accounts,
        fault_s=_parse_range(fault_seconds),
        quiet_s=_parse_range(quiet_seconds),
        liveness_bound_s=liveness_bound,
        p2p=_parse_p2p(p2p),
        disk_mb=disk_mb,
    )

    def say(line: str) -> None:
        click.echo(f"[{time.strftime('%H:%M:%S')}] {line}", err=True)

    try:
        result = run(options, say) if recheck is None else _recheck(recheck, liveness_bound)
    except CliError as exc:
        click.echo(f"error: {exc.code}: {exc.message}", err=True)
        sys.exit(2)
    except (RuntimeError, OSError) as exc:
        click.echo(f"error: nemesis_failed: {exc}", err=True)
        sys.exit(2)
    summary = result["summary"]
    seed, out = result["run"]["seed"], recheck or out
    for name, verdict in result["checks"].items():
        mark = "ok  " if verdict["valid"] else "FAIL"
        click.echo(f"{mark} {name} ({verdict['checked']} checked, "
                   f"{verdict['anomaly_count']} anomalies)")  # fmt: skip
    click.echo(
        f"seed {seed}: {summary['faults_total']} faults {summary['faults']}, "
        f"{summary['transfers_acknowledged']} transfers acknowledged, "
        f"{summary['transfers_unknown']} unknown, {summary['transfers_failed']} failed, "
        f"{summary['reads_ok']} reads; report in {out}"
    )
    click.echo(
        "valid" if result["valid"] else "INVALID: " + ", ".join(checker.failed_checks(result))
    )
    sys.exit(0 if result["valid"] else 1)


if __name__ == "__main__":
    main()
