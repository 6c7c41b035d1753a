"""scripts/bench_growth (cli.bench.growth, cli.bench.prefill): the prefill's transfer
sequence, option errors, and the whole pipeline at tiny scale on real testnets that the
test starts in temporary homes on free ports and always stops."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cli.bench.growth import GrowthOptions, format_markdown, main, run_growth
from cli.bench.prefill import SIGN_PIECE, Population, compute_window, make_transfer_jobs
from ledger.ids import is_account_id
from tests.node.netutil import Net, http, running_testnet

ACCOUNTS = 200
PREFILL = 2000
DOWN_TXS = 500


def test_population_is_computed_not_kept() -> None:
    population = Population.new(["aba", "wing"], 5)
    again = Population(population.secret, ("aba", "wing"), 5)
    assert [again.get_account(i) for i in range(5)] == [population.get_account(i) for i in range(5)]
    names = [population.get_name(i) for i in range(5)]
    assert all(is_account_id(name) for name in names) and len(set(names)) == 5
    assert [name.split("@")[1] for name in names] == ["aba", "wing", "aba", "wing", "aba"]
    assert len({population.get_seed(i) for i in range(5)}) == 5
    assert Population.new(["aba"], 5).get_name(0) != population.get_name(0)


def test_transfer_jobs_follow_the_sequence() -> None:
    population = Population.new(["aba"], 3)
    # transfers 2..7 of 3 accounts: account p mod 3, nonce p div 3
    jobs = make_transfer_jobs("chain", population, 2, 8, created_at=1)
    assert [(job.nonces, [s[0] for s in job.seeds]) for job in jobs] == [
        ((0, 1), [population.get_name(2)]),
        ((1, 2), [population.get_name(i) for i in range(3)]),
        ((2, 3), [population.get_name(0), population.get_name(1)]),
    ]
    # account i pays account i + 1, the last pays the first
    assert jobs[0].seeds[0][2] == population.get_name(0)
    assert jobs[1].seeds[0][1] == population.get_seed(0)


def test_transfer_jobs_split_into_pieces() -> None:
    population = Population.new(["aba"], 3 * SIGN_PIECE)
    jobs = make_transfer_jobs("chain", population, 0, 3 * SIGN_PIECE, created_at=1)
    assert [len(job.seeds) for job in jobs] == [SIGN_PIECE] * 3
    assert {job.nonces for job in jobs} == {(0, 1)}
    assert compute_window(2) < compute_window(10**6)


def test_invalid_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--accounts", "1"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: bad_option: ")


def read_chain_txs(net: Net, name: str) -> int:
    status = net.status(name)
    assert status is not None
    txs = 0
    for first in range(1, status["height"] + 1, 100):
        code, page = http(f"{net.url(name)}/v1/blocks?from={first}&limit=100")
        assert code == 200
        txs += sum(header["txs"] for header in page["blocks"])
    return txs


@pytest.mark.slow
def test_basic(tmp_path: Path) -> None:
    """Fresh and grown testnets; what the pipeline reports is checked against the chain
    of another node before each testnet is stopped."""
    after: dict[str, dict[str, Any]] = {}
    nets: list[Net] = []

    @contextmanager
    def open_testnet(label: str) -> Iterator[Path]:
        with running_testnet(tmp_path / label) as net:
            nets.append(net)
            yield net.home
            statuses = net.wait_converged()
            after[label] = {"height": statuses["height"], "txs": read_chain_txs(net, "canadia")}

    options = GrowthOptions(accounts=ACCOUNTS, prefill=PREFILL, duration_s=3, down_txs=DOWN_TXS)
    report = run_growth(options, open_testnet)
    json.dumps(report)

    fresh, grown, summary = report["fresh"], report["grown"], report["summary"]
    assert report["machine"]["cpus"] >= 1
    assert report["shape"] == {"validators": 4, "observers": 1}
    for side, label in ((fresh, "fresh"), (grown, "grown")):
        assert side["bench"]["checks"]["committed_in_chain"] is True
        assert side["bench"]["tps"] > 0
        assert side["chain"] == after[label]
        assert set(side["disk"]["nodes"]) == {"nbc", "aclb", "aba", "wing", "canadia"}
        assert all(n["bytes"] > 0 and n["bytes_per_tx"] > 0 for n in side["disk"]["nodes"].values())

    prefill = grown["prefill"]
    # the setup txs, then every transfer
    assert prefill["chain"]["txs"] >= PREFILL + ACCOUNTS // 32
    assert prefill["transfers_tps"] > 0 and prefill["accounts_per_s"] > 0
    assert set(prefill["rss_max_mb"]) == {"nbc", "aclb", "aba", "wing", "canadia"}
    committed = grown["bench"]["committed"]
    assert grown["chain"]["txs"] >= prefill["chain"]["txs"] + DOWN_TXS + committed

    restart = grown["restart"]
    assert restart["node"] == "wing" and restart["down_txs"] == DOWN_TXS
    assert restart["stop"] == "stopped"
    assert 0 < restart["serving_s"] <= restart["caught_up_s"]
    assert restart["height_at_serving"] <= restart["height_to_reach"]
    # the catch-up rate against the network's rate while the node was down
    assert restart["down_s"] > 0
    # (the report rounds the seconds: the rates agree to within that rounding)
    assert restart["network_tps"] == pytest.approx(DOWN_TXS / restart["down_s"], rel=0.02)
    assert restart["catch_up_tps"] == pytest.approx(DOWN_TXS / restart["caught_up_s"], rel=0.02)
    assert restart["catch_up_ratio"] == pytest.approx(
        restart["catch_up_tps"] / restart["network_tps"], abs=0.02
    )
    assert restart["sync_tps"] >= restart["catch_up_tps"]

    assert summary["tps_ratio"] == pytest.approx(
        grown["bench"]["tps"] / fresh["bench"]["tps"], 0.01
    )
    assert summary["grown_rss_max_mb"] > 0 and summary["grown_bytes_per_tx"] > 0
    assert set(summary["targets"]) == {"tps_ratio", "rss", "restart_serving"}

    markdown = format_markdown(report)
    assert "catch-up: txs taken in per s" in markdown
    assert f"{ACCOUNTS:,} accounts, {PREFILL:,} prefilled transfers" in markdown
    assert "| committed tx/s |" in markdown and "| canadia |" in markdown
    # every testnet was stopped
    assert all(net.pid(name) is None for net in nets for name in net.names)
