"""scripts/bench_scale: the markdown row it makes of a bench report, and its port choice
(the sweep itself runs real testnets and is a benchmark, not a test)."""

from __future__ import annotations

import importlib.util
import socket
import sys
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


def make_report(ok: bool = True) -> dict[str, Any]:
    """The fields of a `bakong bench --json` report that the table reads."""
    return {
        "tps": 2379.4,
        "tps_until_last_commit": 2301.6,
        "latency_ms": {"p50": 919.2, "p95": 1460.0, "p99": 1778.4},
        "blocks": {"mean_txs": 1319.3, "max_txs": 2500},
        "rss_mb": {"nbc": 98.5, "aba": 101.2},
        "verify_bound_tps": 8858.0,
        "bound_ratio": 0.2686,
        "cpu_percent": {"nbc": 40.0, "aba": 35.0, "bench": 20.0, "host": 190.0},
        "inflight": 2500,
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
