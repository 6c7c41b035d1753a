"""The pure parts of cli.bench.run: accounts, setup txs, pre-signing order, the release
schedule, the tracker and percentiles (the real run is tests/cli/bench/test_command.py)."""

from __future__ import annotations

import pytest

from cli.bench.run import (
    ACCOUNTS_PER_SETUP_TX,
    BenchAccount,
    BenchConfig,
    BenchError,
    Tracker,
    compute_due,
    compute_percentile,
    compute_presign_count,
    make_accounts,
    make_setup_commands,
    make_sign_jobs,
    measure_verify_rate,
    sign_job,
)
from ledger.commands import CreateAccount, Transfer
from ledger.crypto import PrivateKey
from ledger.ids import operator_of
from ledger.tx import SignedTx, is_signature_valid


def accounts(n: int) -> list[BenchAccount]:
    return [BenchAccount(f"b{i}@aclb", PrivateKey.from_seed(bytes([i]) * 32)) for i in range(n)]


def test_make_accounts_spread_over_banks() -> None:
    made = make_accounts(["aba", "aclb"], 5, "x1")
    assert [a.account for a in made] == [
        "benchx1_0@aba",
        "benchx1_1@aclb",
        "benchx1_2@aba",
        "benchx1_3@aclb",
        "benchx1_4@aba",
    ]
    assert len({a.key.public_key for a in made}) == 5


def testmake_setup_commands_create_and_fund() -> None:
    made = accounts(ACCOUNTS_PER_SETUP_TX + 1)
    txs = make_setup_commands(made, "aclb")
    assert [len(cmds) for cmds in txs] == [2 * ACCOUNTS_PER_SETUP_TX, 2]
    create, fund = txs[1]
    assert create == CreateAccount(made[-1].account, made[-1].key.public_key)
    assert isinstance(fund, Transfer) and fund.from_ == operator_of("aclb")
    assert make_setup_commands(made, "aba") == []


def test_sign_job_nonce_major_and_valid() -> None:
    made = accounts(3)
    jobs = make_sign_jobs("chain", made, total=7, created_at=1)
    raws, hashes = [], []
    for job in jobs:
        job_raws, job_hashes = sign_job(job)
        raws += job_raws
        hashes += job_hashes
    # 7 txs over 3 accounts: rounded up to 3 whole rounds
    assert len(raws) == 9
    txs = [SignedTx.decode(raw) for raw in raws]
    assert [(tx.body.signer, tx.body.nonce) for tx in txs[:4]] == [
        ("b0@aclb", 0),
        ("b1@aclb", 0),
        ("b2@aclb", 0),
        ("b0@aclb", 1),
    ]
    assert [tx.hash for tx in txs] == hashes
    assert all(is_signature_valid(tx) for tx in txs)
    # account i pays account i+1, the last pays the first
    assert txs[2].body.commands == (Transfer("b2@aclb", "b0@aclb", "KHR", 1),)


def test_presign_count() -> None:
    assert compute_presign_count(BenchConfig(duration_s=10, rate=500, accounts=20)) == 5000
    assert compute_presign_count(BenchConfig(duration_s=0.01, rate=5, accounts=20)) == 20
    assert compute_presign_count(BenchConfig(duration_s=2, rate=0)) == 20_000


def test_compute_due_at_rate() -> None:
    tracker = Tracker([bytes([i]) * 32 for i in range(100)])
    config = BenchConfig(rate=40)
    assert compute_due(config, tracker, 0.5) == 20
    # never past the pre-signed pool
    assert compute_due(config, tracker, 10.0) == 100


def test_compute_due_unlimited_keeps_in_flight_bounded() -> None:
    tracker = Tracker([bytes([i]) * 32 for i in range(100)])
    config = BenchConfig(rate=0, inflight=30)
    assert compute_due(config, tracker, 0.0) == 30
    tracker.release(30, now=1.0)
    assert compute_due(config, tracker, 1.0) == 30
    tracker.commit([tracker.hashes[0].hex()], height=5, now=2.0)
    tracker.refuse(1, "mempool_full")
    assert compute_due(config, tracker, 2.0) == 32
    # inflight 0: no bound, everything pre-signed is due at once
    assert compute_due(BenchConfig(rate=0, inflight=0), tracker, 2.0) == 100


def test_tracker_counts_a_hash_once() -> None:
    tracker = Tracker([bytes([i]) * 32 for i in range(3)])
    tracker.release(3, now=1.0)
    h = tracker.hashes[2].hex()
    tracker.commit([h, "ff" * 32], height=7, now=1.5)
    tracker.commit([h], height=8, now=1.6)
    assert tracker.committed == 1 and tracker.duplicates == 1
    assert tracker.committed_height[2] == 7 and tracker.committed_at[2] == 1.5


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert compute_percentile(values, 0.50) == 50.0
    assert compute_percentile(values, 0.99) == 99.0
    assert compute_percentile([3.0], 0.99) == 3.0
    assert compute_percentile([], 0.5) == 0.0


def test_measure_verify_rate() -> None:
    raws, _ = sign_job(make_sign_jobs("chain", accounts(4), total=40, created_at=1)[0])
    assert measure_verify_rate(raws, rounds=2) > 100


def test_invalid_measure_verify_rate_bad_signature() -> None:
    raws, _ = sign_job(make_sign_jobs("chain", accounts(1), total=1, created_at=1)[0])
    tx = SignedTx.decode(raws[0])
    forged = SignedTx.decode(raws[0].replace(tx.signatures[0].signature[:8], b"\x00" * 8))
    with pytest.raises(BenchError):
        measure_verify_rate([forged.encode()], rounds=1)
