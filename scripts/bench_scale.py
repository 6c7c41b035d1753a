#!/usr/bin/env python3
"""Scale figures: `bakong bench` on fresh testnets of several sizes and offered loads.

For each validator count (plus the observers) and each offered rate, init a fresh testnet
in a temporary home on free ports below the ephemeral range, start it, run
`bakong bench --duration D --rate R --json`, and always stop it again. Prints a markdown
report (one table row per run, then each size's throughput at p99 <= 1 s) for
docs/performance.md; --json-out keeps the raw reports, --png draws latency against
throughput (matplotlib, the `bench` extra), and --from-json redraws both from a saved
--json-out file without running anything.
Rate 0 means as fast as the network takes txs (bounded by the bench's --inflight).
"committed tx/s" counts commits inside the window; "to last commit" is all committed txs
over the time to the last one, which is what an overloaded network sustains.

    scripts/bench_scale [--validators 4,7] [--rates 250,500,1000,1500,2000,0]
                        [--duration 20] [--out FILE] [--json-out FILE] [--png FILE]
                        [-- BENCH ARGS]
    scripts/bench_scale --from-json FILE [--out FILE] [--json-out FILE] [--png FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from cli.bench.run import get_cpu_model
from cli.devnet.testnet import FREE_PORT_HIGH, FREE_PORT_LOW, find_free_base

ROOT = Path(__file__).resolve().parents[1]
BAKONG = str(Path(sys.executable).with_name("bakong"))
# Ports for testnets stay in [12000, 32000): below the kernel's ephemeral range
# (32768+), whose ports dialing nodes take as source ports.
PORT_LOW, PORT_HIGH = FREE_PORT_LOW, FREE_PORT_HIGH
INIT_ATTEMPTS = 5
TAIL_LINES = 15
# Narwhal's figure of merit: the best throughput whose tail latency stays within this
P99_LIMIT_MS = 1000.0
# The plot's size in pixels is these inches times PNG_DPI.
PNG_INCHES, PNG_DPI = (10.0, 6.0), 100
TIME_FORMAT = "%Y-%m-%d %H:%M %Z"


class ScaleError(Exception):
    """Something asked of the script that it cannot do; shown as `error: code: message`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Run:
    """One bench run: its shape, and its JSON report or the error that stopped it."""

    validators: int
    rate: int
    report: dict[str, Any] | None
    error: str = ""
    wall_s: float = 0.0
    started: str = ""


# ---------------------------------------------------------------------------------------
# one testnet


def get_free_base(port_count: int) -> int:
    """A base port with `port_count` consecutive free ports on 127.0.0.1 (below the
    ephemeral range: `cli.devnet.testnet.find_free_base`)."""
    return find_free_base(port_count)


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
    started, started_at = time.monotonic(), time.strftime(TIME_FORMAT)
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
    return Run(validators, rate, report, error, time.monotonic() - started, started_at)


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
        "ok" if is_checked(r) else f"FAILED {run.error}",
    ]
    return "| " + " | ".join(cells) + " |"


def format_cpu(cpu_percent: dict[str, float]) -> str:
    """All nodes together, and the whole machine (200 = both cores busy), over the window."""
    nodes = sum(v for k, v in cpu_percent.items() if k not in NOT_NODES)
    return f"{nodes:,.0f} / {cpu_percent.get('host', 0):,.0f}"


def format_table(runs: Sequence[Run]) -> str:
    return "\n".join([HEADER, ALIGN, *(format_row(run) for run in runs)])


def format_machine(args: argparse.Namespace, commit: str) -> str:
    """The facts a reader needs to compare these numbers with their own."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return "\n".join([
        f"- machine: {get_cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f", {platform.system()} {platform.release()}",
        f"- run: {time.strftime(TIME_FORMAT)}, commit {commit or 'unknown'}, "
        f"load average before the sweep {load}",
        f"- each run: fresh testnet of N validators + {args.observers} observer, "
        f"`bakong bench --duration {args.duration:g} --rate R --json"
        + "".join(f" {a}" for a in args.bench_args)
        + "`",
    ])  # fmt: skip


def format_source(path: Path, runs: Sequence[Run], commit: str) -> str:
    """What a report redrawn from a saved file can say about where its numbers come from."""
    first = next((run.started for run in runs if run.started), "") or "unknown"
    return (
        f"- redrawn from {path}: {len(runs)} runs, commit {commit or 'unknown'}, "
        f"{format_cores(runs)}, first run {first}"
    )


def get_commit() -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip


# ---------------------------------------------------------------------------------------
# throughput at p99 <= 1 s

SUMMARY_NOTE = (
    "Throughput at p99 <= 1 s (Narwhal's way of comparing systems): for each validator "
    f"count, the highest committed tx/s among its runs whose p99 latency is at most "
    f"{P99_LIMIT_MS:,.0f} ms. Runs that failed or failed their checks do not count; "
    '"none" means that no run of that size qualified.'
)
SUMMARY_HEADER = (
    "| validators | committed tx/s at p99 <= 1 s | offered tx/s | p50 ms | p99 ms "
    "| runs with p99 <= 1 s |"
)
SUMMARY_ALIGN = "|---:|---:|---:|---:|---:|---:|"


def is_checked(report: dict[str, Any]) -> bool:
    """The bench's checks passed: every counted tx is in a chain once, and the nodes agree."""
    checks = report["checks"]
    return bool(checks["committed_in_chain"] and checks["nodes_converged"])


def is_ok(run: Run) -> bool:
    """Finished without an error and passed its checks: only such runs have figures."""
    return run.report is not None and not run.error and is_checked(run.report)


def is_within_p99_limit(run: Run) -> bool:
    return is_ok(run) and get_latency_ms(run, "p99") <= P99_LIMIT_MS


def get_tps(run: Run) -> float:
    return float(run.report["tps"]) if run.report else 0.0


def get_latency_ms(run: Run, percentile: str) -> float:
    return float(run.report["latency_ms"][percentile]) if run.report else math.nan


def get_validator_counts(runs: Sequence[Run]) -> list[int]:
    """In the order the sweep ran them."""
    return list(dict.fromkeys(run.validators for run in runs))


def get_best_within_p99_limit(runs: Sequence[Run], validators: int) -> Run | None:
    """The run behind the figure: most committed tx/s among those with p99 within 1 s."""
    within = [r for r in runs if r.validators == validators and is_within_p99_limit(r)]
    return max(within, key=get_tps, default=None)


def format_summary_row(runs: Sequence[Run], validators: int) -> str:
    sized = [run for run in runs if run.validators == validators]
    count = f"{sum(1 for run in sized if is_within_p99_limit(run))} of {len(sized)}"
    best = get_best_within_p99_limit(runs, validators)
    if best is None:
        cells = [str(validators), "none", "-", "-", "-", count]
    else:
        cells = [
            str(validators),
            f"{get_tps(best):,.0f}",
            format_offered(best),
            f"{get_latency_ms(best, 'p50'):,.0f}",
            f"{get_latency_ms(best, 'p99'):,.0f}",
            count,
        ]
    return "| " + " | ".join(cells) + " |"


def format_summary(runs: Sequence[Run]) -> str:
    rows = [format_summary_row(runs, validators) for validators in get_validator_counts(runs)]
    return "\n".join([SUMMARY_NOTE, "", SUMMARY_HEADER, SUMMARY_ALIGN, *rows])


# ---------------------------------------------------------------------------------------
# the plot


def load_pyplot() -> ModuleType:
    """matplotlib is the optional `bench` extra, imported only when a plot is asked for."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ScaleError(
            "matplotlib_missing",
            f"--png needs matplotlib ({exc}); install it with: pip install -e '.[bench]'",
        ) from None
    return plt


def write_png(runs: Sequence[Run], path: Path, title: str) -> None:
    """Latency against committed tx/s as CometBFT's QA reports draw it: a p50 and a p99
    line per validator count, points in order of offered rate, each labelled with it."""
    plt = load_pyplot()
    fig, ax = plt.subplots(figsize=PNG_INCHES, dpi=PNG_DPI)
    for i, validators in enumerate(get_validator_counts(runs)):
        points = [run for run in runs if run.validators == validators and is_ok(run)]
        points.sort(key=get_offered_order)
        plot_series(ax, points, get_best_within_p99_limit(runs, validators), f"C{i}")
    ax.axhline(P99_LIMIT_MS, color="grey", linestyle=":", linewidth=1, label="p99 limit, 1 s")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plt.FuncFormatter(format_tick))
    ax.yaxis.set_minor_formatter(plt.FuncFormatter(format_minor_ms_tick))
    ax.xaxis.set_major_formatter(plt.FuncFormatter(format_tick))
    ax.set_xlim(left=0)
    ax.set_xlabel("committed throughput (tx/s)")
    ax.set_ylabel("commit latency (ms, log scale)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="point labels: offered tx/s", fontsize=8, title_fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_series(ax: Any, points: Sequence[Run], best: Run | None, color: str) -> None:
    """One validator count: p50 solid, p99 dashed, its p99 <= 1 s figure starred."""
    if not points:
        return
    name = f"{points[0].validators} validators"
    xs = [get_tps(run) for run in points]
    for percentile, style, marker, dy in (("p50", "-", "o", -11), ("p99", "--", "s", 5)):
        ys = [get_latency_ms(run, percentile) for run in points]
        ax.plot(xs, ys, linestyle=style, marker=marker, color=color, label=f"{name}, {percentile}")
        for run, x, y in zip(points, xs, ys, strict=True):
            ax.annotate(
                format_rate_label(run), (x, y), textcoords="offset points", xytext=(4, dy),
                fontsize=7, color=color,
            )  # fmt: skip
    if best is not None:
        ax.plot(
            [get_tps(best)], [get_latency_ms(best, "p99")], marker="*", markersize=15,
            color=color, linestyle="none", label=f"{name}, most tx/s at p99 <= 1 s",
        )  # fmt: skip


def get_offered_order(run: Run) -> float:
    """Unlimited (rate 0) offers the most, so it comes last."""
    return run.rate or math.inf


def format_rate_label(run: Run) -> str:
    return f"{run.rate:,}" if run.rate else "unlimited"


def format_tick(value: float, _pos: int | None = None) -> str:
    return f"{value:,.0f}"


def format_minor_ms_tick(value: float, _pos: int | None = None) -> str:
    """Between the decades only 2x and 5x are labelled, so a log axis still reads in ms."""
    if value <= 0:
        return ""
    lead = round(value / 10 ** math.floor(math.log10(value)))
    return f"{value:,.0f}" if lead in (2, 5) else ""


def format_title(runs: Sequence[Run], commit: str) -> str:
    first = next((run.started for run in runs if run.started), "")
    date = first.split(" ")[0] if first else "date unknown"
    return (
        "bakong bench: commit latency against committed throughput\n"
        f"{format_cores(runs)}, {date}, commit {commit or 'unknown'}"
    )


def format_cores(runs: Sequence[Run]) -> str:
    """From the reports, so that a redrawn plot names the machine that ran them."""
    cpus = sorted({int(run.report["cpus"]) for run in runs if run.report and "cpus" in run.report})
    return f"{', '.join(map(str, cpus))} cores" if cpus else "cores unknown"


# ---------------------------------------------------------------------------------------
# the saved reports (--json-out, --from-json)

# what the table, summary and plot read of a `bakong bench --json` report
REPORT_KEYS = (
    "tps", "tps_until_last_commit", "latency_ms", "blocks", "rss_mb", "verify_bound_tps",
    "bound_ratio", "cpu_percent", "checks",
)  # fmt: skip


def to_json(runs: Sequence[Run], commit: str) -> list[dict[str, Any]]:
    """The --json-out list: outside scripts read it, so its keys are only ever added to.
    Each entry says whether its run counts for the p99 <= 1 s figure (finished, checks
    passed, p99 within 1 s) and whether it is the run that gives its size's figure."""
    best = {v: get_best_within_p99_limit(runs, v) for v in get_validator_counts(runs)}
    return [
        {
            "validators": run.validators,
            "rate": run.rate,
            "error": run.error,
            "report": run.report,
            "started": run.started,
            "commit": commit,
            "wall_s": round(run.wall_s, 1),
            "p99_within_1s": is_within_p99_limit(run),
            "best_within_p99_1s": best[run.validators] is run,
        }
        for run in runs
    ]


def load_runs(path: Path) -> tuple[list[Run], str]:
    """The runs of a saved --json-out file and the commit they ran at; files written
    before the started and commit keys existed load too."""
    try:
        raw = json.loads(path.read_text())
        runs = [parse_run(entry) for entry in raw]
        commit = next((str(entry["commit"]) for entry in raw if entry.get("commit")), "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ScaleError(
            "bad_json", f"{path}: not a --json-out file ({type(exc).__name__}: {exc})"
        ) from None
    return runs, commit


def parse_run(entry: dict[str, Any]) -> Run:
    report = entry["report"]
    if report is not None and not isinstance(report, dict):
        raise TypeError(f"report of {entry['validators']} validators is not an object")
    missing = [key for key in REPORT_KEYS if report is not None and key not in report]
    if missing:
        raise ValueError(f"report of {entry['validators']} validators lacks {', '.join(missing)}")
    return Run(
        int(entry["validators"]),
        int(entry["rate"]),
        report,
        str(entry["error"]),
        float(entry.get("wall_s", 0.0)),
        str(entry.get("started", "")),
    )


# ---------------------------------------------------------------------------------------
# main


def parse_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="exit status: 0 when every run finished (or a saved file was redrawn), "
        "1 when some run failed, 2 after an `error: code: message` line",
    )
    parser.add_argument("--validators", type=parse_ints, default=[4, 7], help="e.g. 4,7")
    parser.add_argument(
        "--rates", type=parse_ints, default=[250, 500, 1000, 1500, 2000, 0],
        help="offered tx/s per run, 0 = unlimited (default 250,500,1000,1500,2000,0)",
    )  # fmt: skip
    parser.add_argument("--observers", type=int, default=1)
    parser.add_argument("--duration", type=float, default=20.0, help="bench window (s)")
    parser.add_argument("--out", type=Path, help="write the markdown here (default stdout)")
    parser.add_argument("--json-out", type=Path, help="write the raw bench reports here")
    parser.add_argument(
        "--png", type=Path, metavar="FILE",
        help="draw latency against committed tx/s here (needs matplotlib: the bench extra)",
    )  # fmt: skip
    parser.add_argument(
        "--from-json", type=Path, metavar="FILE",
        help="run nothing: redraw the report, summary and plot from a saved --json-out file",
    )  # fmt: skip
    parser.add_argument("bench_args", nargs="*", help="after --: more `bakong bench` options")
    return parser.parse_args(argv)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so the running testnet is downed on the way out."""
    raise KeyboardInterrupt


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if args.png:
            load_pyplot()  # before a sweep of minutes, not after it
        if args.from_json:
            runs, commit = load_runs(args.from_json)
            heading = format_source(args.from_json, runs, commit)
        else:
            commit = get_commit()
            heading = format_machine(args, commit)
            runs = run_sweep(args)
        write_outputs(args, runs, commit, heading)
    except ScaleError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    if args.from_json:
        return 0
    return 0 if all(r.report and not r.error for r in runs) else 1


def run_sweep(args: argparse.Namespace) -> list[Run]:
    runs: list[Run] = []
    for validators in args.validators:
        for rate in args.rates:
            print(f"== {validators} validators, rate {rate or 'unlimited'}", file=sys.stderr)
            run = run_one(validators, args.observers, rate, args.duration, args.bench_args)
            runs.append(run)
            print(format_row(run), f"({run.wall_s:.0f} s)", file=sys.stderr)
    return runs


def write_outputs(args: argparse.Namespace, runs: Sequence[Run], commit: str, heading: str) -> None:
    """The markdown and JSON first, so that a plot that cannot be written loses neither."""
    markdown = f"{heading}\n\n{format_table(runs)}\n\n{format_summary(runs)}\n"
    if args.out:
        args.out.write_text(markdown)
    else:
        print(markdown)
    if args.json_out:
        args.json_out.write_text(json.dumps(to_json(runs, commit), indent=1) + "\n")
    if args.png:
        write_png(runs, args.png, format_title(runs, commit))


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
