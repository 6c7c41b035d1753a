"""scripts/bench_scale: the markdown row it makes of a bench report, its port choice, the
throughput-at-p99 <= 1 s figure, the plot and the redraw from a saved --json-out file, all
from made-up reports (the sweep itself runs real testnets and is a benchmark, not a test)."""

from __future__ import annotations

import importlib.util
import json
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_scale.py"


@pytest.fixture(scope="module")
def scale() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules
    sys.modules["bench_scale"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def keep_sigterm() -> Iterator[None]:
    """main() installs its own SIGTERM handler; the test process gets its own back."""
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


def make_report(
    ok: bool = True, tps: float = 2379.4, p50: float = 919.2, p99: float = 1778.4
) -> dict[str, Any]:
    """The fields of a `bakong bench --json` report that the table, summary and plot read."""
    return {
        "tps": tps,
        "tps_until_last_commit": 2301.6,
        "latency_ms": {"p50": p50, "p95": 1460.0, "p99": p99},
        "blocks": {"mean_txs": 1319.3, "max_txs": 2500},
        "rss_mb": {"nbc": 98.5, "aba": 101.2},
        "verify_bound_tps": 8858.0,
        "bound_ratio": 0.2686,
        "cpu_percent": {"nbc": 40.0, "aba": 35.0, "bench": 20.0, "host": 190.0},
        "inflight": 2500,
        "cpus": 2,
        "checks": {"committed_in_chain": ok, "nodes_converged": True},
    }


def cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip("|").split("|")]


def test_basic(scale: ModuleType) -> None:
    row = scale.format_row(scale.Run(4, 0, make_report()))
    assert cells(row) == [
        "4", "unlimited (inflight 2,500)", "2,379", "2,302", "919", "1,460", "1,778",
        "1,319 / 2,500", "101", "8,858", "0.27", "75 / 190", "ok",
    ]  # fmt: skip
    assert len(cells(row)) == len(cells(scale.HEADER))
    table = scale.format_table([scale.Run(7, 1000, make_report())]).splitlines()
    assert table[0] == scale.HEADER and cells(table[2])[:2] == ["7", "1,000"]


def test_invalid_checks_failed(scale: ModuleType) -> None:
    run = scale.Run(4, 500, make_report(ok=False), "error: bench_check_failed: x")
    assert cells(scale.format_row(run))[-1] == "FAILED error: bench_check_failed: x"


def test_invalid_no_report(scale: ModuleType) -> None:
    run = scale.Run(7, 0, None, "testnet up failed")
    assert cells(scale.format_row(run)) == ["7", "unlimited", "failed: testnet up failed"]


def test_free_base_is_free_and_below_ephemeral(scale: ModuleType) -> None:
    base = scale.get_free_base(16)
    assert base >= scale.PORT_LOW and base + 16 <= scale.PORT_HIGH < 32768
    for port in range(base, base + 16):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_parse_args(scale: ModuleType) -> None:
    args = scale.parse_args(["--rates", "500,0", "--", "--inflight", "1000"])
    assert args.rates == [500, 0] and args.validators == [4, 7]
    assert args.duration == 20.0 and args.bench_args == ["--inflight", "1000"]


def make_sweep(scale: ModuleType) -> list[Any]:
    """4 validators: the most tx/s is at p99 > 1 s, so the figure is the run below it (its
    p99 exactly 1 s); a failed run with a low p99 and the most tx/s does not count.
    7 validators: no run has p99 <= 1 s."""
    run = scale.Run
    return [
        run(4, 250, make_report(tps=249.8, p50=92.0, p99=159.0), started="2026-03-02 10:00 UTC"),
        run(4, 2000, make_report(tps=1985.0, p50=310.0, p99=1000.0)),
        run(4, 1000, make_report(tps=995.1, p50=113.0, p99=237.0)),
        run(4, 0, make_report(tps=2650.0, p50=880.0, p99=1300.0)),
        run(4, 1500, make_report(ok=False, tps=2900.0, p99=500.0), "error: bench_check_failed: x"),
        run(7, 1000, make_report(tps=990.0, p50=400.0, p99=1200.0)),
        run(7, 0, make_report(tps=1700.0, p50=1500.0, p99=2500.0)),
        run(7, 2000, None, "testnet up failed"),
    ]


def read_png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which the PNG format puts first."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_p99_figure_skips_the_fastest_run_above_1s(scale: ModuleType) -> None:
    runs = make_sweep(scale)
    best = scale.get_best_within_p99_limit(runs, 4)
    assert best is runs[1] and best.rate == 2000
    assert [scale.is_within_p99_limit(run) for run in runs[:5]] == [True, True, True, False, False]


def test_p99_figure_none_qualifies(scale: ModuleType) -> None:
    runs = make_sweep(scale)
    assert scale.get_best_within_p99_limit(runs, 7) is None
    assert scale.get_best_within_p99_limit(runs, 10) is None


def test_summary_table(scale: ModuleType) -> None:
    lines = scale.format_summary(make_sweep(scale)).splitlines()
    assert "highest committed tx/s" in lines[0] and "1,000 ms" in lines[0]
    assert lines[2] == scale.SUMMARY_HEADER
    assert cells(lines[4]) == ["4", "1,985", "2,000", "310", "1,000", "3 of 5"]
    assert cells(lines[5]) == ["7", "none", "-", "-", "-", "0 of 3"]
    assert len(lines) == 6


def test_json_out_keeps_its_keys_and_marks_the_figure(scale: ModuleType, tmp_path: Path) -> None:
    runs = make_sweep(scale)
    raw = scale.to_json(runs, "abc1234")
    assert list(raw[0])[:4] == ["validators", "rate", "error", "report"]
    assert [e["best_within_p99_1s"] for e in raw] == [False, True] + [False] * 6
    assert [e["p99_within_1s"] for e in raw] == [True, True, True] + [False] * 5
    path = tmp_path / "scale.json"
    path.write_text(json.dumps(raw))
    loaded, commit = scale.load_runs(path)
    assert loaded == runs and commit == "abc1234"


def test_png(scale: ModuleType, tmp_path: Path) -> None:
    runs = make_sweep(scale)
    title = scale.format_title(runs, "abc1234")
    assert title.splitlines()[1] == "2 cores, 2026-03-02, commit abc1234"
    png = tmp_path / "scale.png"
    scale.write_png(runs, png, title)
    inches, dpi = scale.PNG_INCHES
    assert read_png_size(png) == (round(inches * scale.PNG_DPI), round(dpi * scale.PNG_DPI))
    # a drawn chart, not an empty canvas (which compresses to a few kB)
    assert png.stat().st_size > 20_000


@pytest.mark.usefixtures("keep_sigterm")
def test_invalid_png_without_matplotlib(
    scale: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The missing extra is said before the sweep would start, not after its minutes."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)

    def no_sweep(*args: Any) -> None:
        raise AssertionError("the sweep started")

    monkeypatch.setattr(scale, "run_one", no_sweep)
    assert scale.main(["--png", str(tmp_path / "scale.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: matplotlib_missing: --png needs matplotlib")
    assert not (tmp_path / "scale.png").exists()


@pytest.mark.usefixtures("keep_sigterm")
def test_sweep_outputs(
    scale: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The sweep's markdown keeps its table, with the summary after it; --json-out and
    --png are written from the same runs."""
    sweep = iter(make_sweep(scale)[5:7])
    monkeypatch.setattr(scale, "run_one", lambda *args: next(sweep))
    out, raw, png = tmp_path / "scale.md", tmp_path / "scale.json", tmp_path / "scale.png"
    argv = ["--validators", "7", "--rates", "1000,0", "--out", str(out), "--json-out", str(raw)]
    assert scale.main([*argv, "--png", str(png)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("- machine: ") and lines[4] == scale.HEADER
    assert [cells(line)[:2] for line in lines[6:8]] == [
        ["7", "1,000"],
        ["7", "unlimited (inflight 2,500)"],
    ]
    assert lines[-1] == "| 7 | none | - | - | - | 0 of 2 |"
    assert [e["rate"] for e in json.loads(raw.read_text())] == [1000, 0]
    assert read_png_size(png)[0] > 0
    assert "== 7 validators, rate 1000" in capsys.readouterr().err


def test_from_json_end_to_end(scale: ModuleType, tmp_path: Path) -> None:
    """A saved file redrawn by the script itself, as a file written before the started
    and commit keys existed."""
    saved = tmp_path / "saved.json"
    old = [{k: e[k] for k in ("validators", "rate", "error", "report")}
           for e in scale.to_json(make_sweep(scale), "")]  # fmt: skip
    saved.write_text(json.dumps(old, indent=1))
    out, raw, png = tmp_path / "scale.md", tmp_path / "scale.json", tmp_path / "scale.png"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--from-json", str(saved), "--out", str(out),
         "--json-out", str(raw), "--png", str(png)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    markdown = out.read_text()
    assert markdown.startswith(f"- redrawn from {saved}: 8 runs, commit unknown, 2 cores")
    assert "| 4 | 1,985 | 2,000 | 310 | 1,000 | 3 of 5 |" in markdown
    assert "| 7 | unlimited (inflight 2,500) | 1,700 |" in markdown
    assert [e["best_within_p99_1s"] for e in json.loads(raw.read_text())][:2] == [False, True]
    width, height = read_png_size(png)
    assert (width, height) == (1000, 600)


@pytest.mark.parametrize(
    "text",
    [
        '{"tps": 2000}',
        "[{",
        '[{"validators": 4, "rate": 0, "error": "", "report": [1]}]',
        '[{"validators": 4, "rate": 0, "error": "", "report": {"tps": 1}}]',
    ],
    ids=["not_a_list", "not_json", "report_not_an_object", "report_lacks_keys"],
)
def test_invalid_from_json_not_a_report(tmp_path: Path, text: str) -> None:
    saved = tmp_path / "saved.json"
    saved.write_text(text)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--from-json", str(saved)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: bad_json: {saved}: not a --json-out file")
    assert len(done.stderr.splitlines()) == 1
