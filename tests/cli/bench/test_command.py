"""`bakong bench` on a real small testnet: the JSON contract, and that what it counts as
committed is really in the chain (read back independently of the bench)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

import cli.bench.command as bench_cmd
from cli.bench.run import FUNDING
from cli.main import cli
from tests.node.netutil import Net, http, running_testnet

CONTRACT_KEYS = {"tps", "committed", "latency_ms", "verify_bound_tps"}


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["bench", *args], env={"BAKONG_HOME": None})


def read_chain(net: Net, name: str) -> list[dict[str, Any]]:
    """Every tx of every block on node `name`, with its height."""
    status = net.status(name)
    assert status is not None
    out = []
    for height in range(1, status["height"] + 1):
        code, block = http(f"{net.url(name)}/v1/blocks/{height}")
        assert code == 200
        out += [tx | {"height": height} for tx in block["txs"]]
    return out


def test_basic(tmp_path: Path) -> None:
    with running_testnet(tmp_path) as net:
        result = run(
            "--home", str(net.home), "--duration", "3", "--rate", "300",
            "--accounts", "20", "--batch", "100", "--drain", "20", "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert set(report) >= CONTRACT_KEYS
        assert set(report["latency_ms"]) >= {"p50", "p95", "p99"}
        assert report["checks"]["committed_in_chain"] is True
        assert report["checks"]["nodes_converged"] is True
        # at 300 tx/s a 4+1 testnet keeps up: everything sent is committed
        assert report["sent"] == report["committed"] >= 850
        assert report["pool_exhausted"] is False  # a fixed rate: the pool is the schedule
        assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
        assert report["tps"] > 0 and report["verify_bound_tps"] > 0
        # 4 validators + 1 observer: five nodes verify each tx
        all_nodes = report["verify_bound_all_nodes_tps"]
        assert all_nodes == pytest.approx(report["verify_bound_tps"] * 4 / 5, rel=0.01)
        assert set(report["rss_mb"]) == set(net.names)

        chain = read_chain(net, net.names[-1])
        transfers = [tx for tx in chain if tx["signer"].startswith("bench")]
        assert len(transfers) == report["committed"]
        assert max(Counter(tx["hash"] for tx in chain).values()) == 1
        # each transfer moves one riel: a balance is its funding, minus sent, plus received
        expected = Counter({tx["signer"]: FUNDING for tx in transfers})
        for tx in transfers:
            (cmd,) = tx["commands"]
            assert cmd["type"] == "transfer" and cmd["amount"] == "1"
            expected[cmd["from"]] -= 1
            expected[cmd["to"]] += 1
        assert len(expected) == 20
        nonces = 0
        for account, balance in expected.items():
            code, found = http(f"{net.url(net.names[0])}/v1/accounts/{account}")
            assert code == 200
            assert found["balances"]["KHR"] == str(balance)
            nonces += found["nonce"]
        assert nonces == report["committed"]


def test_invalid_no_testnet(tmp_path: Path) -> None:
    result = run("--home", str(tmp_path / "none"), "--duration", "1", "--json")
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: testnet_not_found:")
    assert result.stdout == ""


def test_invalid_check_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed correctness check still prints the report, then exits non-zero."""
    report = {"tps": 1.0, "checks": {"committed_in_chain": False, "nodes_converged": True}}
    monkeypatch.setattr(bench_cmd, "load_target", lambda home, urls: None)
    monkeypatch.setattr(bench_cmd, "_run_with_progress", lambda config, target: report)
    result = run("--home", str(tmp_path), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == report
    assert result.stderr.strip().splitlines()[-1].startswith("error: bench_check_failed:")


def _report(**overrides: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "tps": 4000.0,
        "offered_tps": 4000.0,
        "committed": 120_000,
        "sent": 120_000,
        "presigned": 120_000,
        "pool_exhausted": True,
        "latency_ms": {"p50": 500.0, "p95": 900.0, "p99": 1000.0},
        "verify_bound_tps": 8000.0,
        "bound_ratio": 0.5,
        "refused": {},
        "uncommitted": 0,
        "undecided": {},
        "blocks": {"with_txs": 10, "mean_txs": 1000.0, "max_txs": 2000},
        "rss_mb": {"nbc": 90.0},
        "cpu_percent": {"nbc": 40.0},
        "checks": {"committed_in_chain": True, "nodes_converged": True},
    }
    return report | overrides


def _rendered(report: dict[str, Any]) -> str:
    console = Console(record=True, width=200)
    console.print(bench_cmd._summary_table(report))
    return console.export_text()


def test_the_table_says_when_the_pre_signed_pool_ran_out() -> None:
    # every pre-signed tx went out: the nodes kept up, so tx/s is only a floor
    assert "120,000 txs, all sent: the tx/s above is a floor" in _rendered(_report())
    text = _rendered(_report(sent=80_000, committed=80_000, pool_exhausted=False))
    assert "120,000 txs" in text and "floor" not in text
