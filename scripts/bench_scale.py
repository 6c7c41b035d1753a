#!/usr/bin/env python3
"""Scale figures: `bakong bench` on fresh testnets of several sizes and offered loads.

For each validator count (plus the observers) and each offered rate, init a fresh testnet
in a temporary home on free ports below the ephemeral range, start it, run
`bakong bench --duration D --rate R --json`, and always stop it again. Prints a markdown
report (one table row per run) for docs/performance.md; --json-out keeps the raw reports.
Rate 0 means as fast as the network takes txs (bounded by the bench's --inflight).
"committed tx/s" counts commits inside the window; "to last commit" is all committed txs
over the time to the last one, which is what an overloaded network sustains.

    scripts/bench_scale [--validators 4,7] [--rates 250,500,1000,1500,2000,0]
                        [--duration 20] [--out FILE] [--json-out FILE] [-- BENCH ARGS]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BAKONG = str(Path(sys.executable).with_name("bakong"))
# Ports for testnets stay in [12000, 32000): below the kernel's ephemeral range
# (32768+), whose ports dialing nodes take as source ports.
PORT_LOW, PORT_HIGH = 12000, 32000
INIT_ATTEMPTS = 5
TAIL_LINES = 15


@dataclass(frozen=True, slots=True)
class Run:
    """One bench run: its shape, and its JSON report or the error that stopped it."""

    validators: int
    rate: int
    report: dict[str, Any] | None
    error: str = ""
    wall_s: float = 0.0


# ---------------------------------------------------------------------------------------
# one testnet


def get_free_base(port_count: int) -> int:
    """A base port with `port_count` consecutive free ports on 127.0.0.1."""
    for _ in range(200):
        base = random.randrange(PORT_LOW, PORT_HIGH - port_count, 2)
        if all(is_port_free(port) for port in range(base, base + port_count)):
            return base
    raise RuntimeError(f"no {port_count} consecutive free ports in {PORT_LOW}..{PORT_HIGH}")


def is_port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def bakong(*args: str, log: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI; stderr (progress bars, node start messages) goes to `log`."""
    with log.open("a") as err:
        return subprocess.run([BAKONG, *args], stdout=subprocess.PIPE, stderr=err, text=True)


def init_testnet(home: Path, validators: int, observers: int, log: Path) -> None:
    """Init on a fresh free base; retried, since another process may take a port first."""
    for _ in range(INIT_ATTEMPTS):
        base = get_free_base(2 * (validators + observers))
        args = ["--validators", str(validators), "--observers", str(observers)]
        done = bakong(
            "testnet", "init", "--home", str(home), *args, "--base-port", str(base), "--force",
            log=log,
        )  # fmt: skip
        if done.returncode == 0:
            return
    raise RuntimeError(f"testnet init failed {INIT_ATTEMPTS} times")


@contextmanager
def running_testnet(validators: int, observers: int, log: Path) -> Iterator[Path]:
    """A started testnet in a temporary home; downed afterwards whatever happened. The
    home is kept (and said so) when `down` fails, so that its nodes can still be stopped."""
    home = Path(tempfile.mkdtemp(prefix="bakong-scale."))
    try:
        init_testnet(home, validators, observers, log)
        if bakong("testnet", "up", "--home", str(home), log=log).returncode != 0:
            raise RuntimeError("testnet up failed")
        yield home
    finally:
        # nothing to stop when init failed
        initialized = (home / "testnet.json").exists()
        if (
            not initialized
            or bakong("testnet", "down", "--home", str(home), log=log).returncode == 0
        ):
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"testnet down failed; stop it with: bakong testnet down --home {home}",
                  file=sys.stderr)  # fmt: skip


def run_one(
    validators: int, observers: int, rate: int, duration: float, bench_args: Sequence[str]
) -> Run:
    """Bench one fresh testnet; a failure becomes the run's error, not the sweep's end."""
    started = time.monotonic()
    with tempfile.NamedTemporaryFile("w", prefix="bakong-scale.", suffix=".log") as f:
        log = Path(f.name)
        try:
            with running_testnet(validators, observers, log) as home:
                done = bakong(
                    "bench", "--home", str(home), "--duration", str(duration),
                    "--rate", str(rate), "--json", *bench_args,
                    log=log,
                )  # fmt: skip
            report = json.loads(done.stdout) if done.stdout.strip() else None
            error = "" if done.returncode == 0 else get_last_error(log)
        except (RuntimeError, json.JSONDecodeError) as exc:
            report, error = None, f"{exc}; {get_last_error(log)}"
        if error:
            tail = log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
            print("\n".join(tail), file=sys.stderr)
    return Run(validators, rate, report, error, time.monotonic() - started)


def get_last_error(log: Path) -> str:
    """The CLI's one-line `error: code: message`, if it printed one."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("error:")]
    return lines[-1] if lines else "no error line (see the log tail above)"


# ---------------------------------------------------------------------------------------
# the markdown report

HEADER = (
    "| validators | offered tx/s | committed tx/s | to last commit | p50 ms | p95 ms | p99 ms "
    "| block txs mean / max | max RSS MB | bound tx/s | ratio | nodes / host CPU % | checks |"
)
ALIGN = "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|"
# cpu_percent keys that are not nodes
NOT_NODES = frozenset({"bench", "host"})


def format_offered(run: Run) -> str:
    if run.rate:
        return f"{run.rate:,}"
    inflight = run.report["inflight"] if run.report else 0
    return f"unlimited (inflight {inflight:,})" if inflight else "unlimited"


def format_row(run: Run) -> str:
    """One table row; a failed run keeps its shape and says why it has no numbers."""
    if run.report is None:
        return f"| {run.validators} | {format_offered(run)} | failed: {run.error} |"
    r = run.report
    lat = r["latency_ms"]
    blocks = r["blocks"]
    checks = r["checks"]
    ok = checks["committed_in_chain"] and checks["nodes_converged"]
    cells = [
        str(run.validators),
        format_offered(run),
        f"{r['tps']:,.0f}",
        f"{r['tps_until_last_commit']:,.0f}",
        f"{lat['p50']:,.0f}",
        f"{lat['p95']:,.0f}",
        f"{lat['p99']:,.0f}",
        f"{blocks['mean_txs']:,.0f} / {blocks['max_txs']:,}",
        f"{max(r['rss_mb'].values(), default=0):,.0f}",
        f"{r['verify_bound_tps']:,.0f}",
        f"{r['bound_ratio']:.2f}",
        format_cpu(r["cpu_percent"]),
        "ok" if ok else f"FAILED {run.error}",
    ]
    return "| " + " | ".join(cells) + " |"


def format_cpu(cpu_percent: dict[str, float]) -> str:
    """All nodes together, and the whole machine (200 = both cores busy), over the window."""
    nodes = sum(v for k, v in cpu_percent.items() if k not in NOT_NODES)
    return f"{nodes:,.0f} / {cpu_percent.get('host', 0):,.0f}"


def format_table(runs: Sequence[Run]) -> str:
    return "\n".join([HEADER, ALIGN, *(format_row(run) for run in runs)])


def format_machine(args: argparse.Namespace) -> str:
    """The facts a reader needs to compare these numbers with their own."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return "\n".join([
        f"- machine: {get_cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f", {platform.system()} {platform.release()}",
        f"- run: {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {commit or 'unknown'}, "
        f"load average before the sweep {load}",
        f"- each run: fresh testnet of N validators + {args.observers} observer, "
        f"`bakong bench --duration {args.duration:g} --rate R --json"
        + "".join(f" {a}" for a in args.bench_args)
        + "`",
    ])  # fmt: skip


def get_cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ---------------------------------------------------------------------------------------
# main


def parse_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--validators", type=parse_ints, default=[4, 7], help="e.g. 4,7")
    parser.add_argument(
        "--rates", type=parse_ints, default=[250, 500, 1000, 1500, 2000, 0],
        help="offered tx/s per run, 0 = unlimited (default 250,500,1000,1500,2000,0)",
    )  # fmt: skip
    parser.add_argument("--observers", type=int, default=1)
    parser.add_argument("--duration", type=float, default=20.0, help="bench window (s)")
    parser.add_argument("--out", type=Path, help="write the markdown here (default stdout)")
    parser.add_argument("--json-out", type=Path, help="write the raw bench reports here")
    parser.add_argument("bench_args", nargs="*", help="after --: more `bakong bench` options")
    return parser.parse_args(argv)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so the running testnet is downed on the way out."""
    raise KeyboardInterrupt


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    machine = format_machine(args)
    runs: list[Run] = []
    for validators in args.validators:
        for rate in args.rates:
            print(f"== {validators} validators, rate {rate or 'unlimited'}", file=sys.stderr)
            run = run_one(validators, args.observers, rate, args.duration, args.bench_args)
            runs.append(run)
            print(format_row(run), f"({run.wall_s:.0f} s)", file=sys.stderr)
    markdown = f"{machine}\n\n{format_table(runs)}\n"
    if args.out:
        args.out.write_text(markdown)
    else:
        print(markdown)
    if args.json_out:
        raw = [{"validators": r.validators, "rate": r.rate, "error": r.error, "report": r.report}
               for r in runs]  # fmt: skip
        args.json_out.write_text(json.dumps(raw, indent=1) + "\n")
    return 0 if all(r.report and not r.error for r in runs) else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
