#!/usr/bin/env python3
"""Ledger benchmark: pre-signed transfers in blocks on a LevelDB store, one core.

Prints the verify rate (check_tx_stateless), the apply rate (apply_block without
verification), the commit rate (seal the block and commit_block) and the three together,
in tx/s. Targets: apply >= 50,000 tx/s, verify+apply+commit >= 12,000 tx/s.

CPU time per phase is this thread's; LevelDB's background threads (compaction of what
commits wrote) run alongside any phase, so their CPU time is counted in commit.

    .venv/bin/python scripts/bench_ledger.py [--txs 20000] [--block-size 1000] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genesis.document import Genesis
from genesis.load import load_genesis_into
from ledger.block import NO_COMMIT_HASH, build_block
from ledger.chain import commit_block, get_block_hash, get_height, get_state_hash
from ledger.commands import Transfer
from ledger.store.leveldb import LevelDBStore
from ledger.transition import BlockContext, BlockResult, apply_block
from ledger.tx import SignedTx, check_tx_stateless
from tests.ledger.helpers import (
    BLOCK_INTERVAL_MS,
    CHAIN_ID,
    GENESIS_TIME,
    make_genesis,
    make_tx,
)

SENDERS = 2_000
PHASES = ("verify", "apply", "commit")
Profiler = cProfile.Profile | None


@dataclass
class Timings:
    """Seconds per phase, on the CPU (what one core does, whatever else runs on the
    machine) and on the wall clock (which also counts fsync waits)."""

    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    wall: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    background_cpu: float = 0.0

    def add(self, phase: str, cpu: float, wall: float) -> None:
        self.cpu[phase] += cpu
        self.wall[phase] += wall


def now() -> tuple[float, float]:
    return time.thread_time(), time.perf_counter()


def make_workload(count: int) -> tuple[Genesis, list[SignedTx]]:
    """A genesis with SENDERS funded customers and `count` transfers: tx t is sender
    t % SENDERS's nonce t // SENDERS, so every block split is valid in order."""
    senders = [f"c{i}@aclb" for i in range(SENDERS)]
    genesis = make_genesis(
        customers=dict.fromkeys(senders, True),
        balances=[(s, "KHR", 10**12) for s in senders],
    )
    txs = [
        make_tx(
            senders[t % SENDERS],
            t // SENDERS,
            Transfer(senders[t % SENDERS], senders[(t * 7 + 1) % SENDERS], "KHR", 1 + t % 97),
            created_at=GENESIS_TIME,
        )
        for t in range(count)
    ]
    return genesis, txs


def verify_all(txs: Sequence[SignedTx]) -> None:
    for tx in txs:
        check_tx_stateless(tx, CHAIN_ID)


def apply_next(store: LevelDBStore, txs: Sequence[SignedTx]) -> tuple[BlockContext, BlockResult]:
    height = get_height(store) + 1
    ctx = BlockContext(CHAIN_ID, height, GENESIS_TIME + height * BLOCK_INTERVAL_MS)
    prev_state_hash = get_state_hash(store, height - 1) or b""
    result = apply_block(store, prev_state_hash, ctx, txs)
    rejected = [r for r in result.results if r.code is not None]
    if rejected:
        raise SystemExit(f"error: bench_failed: block {height} rejected {rejected[0]}")
    return ctx, result


def commit_next(
    store: LevelDBStore, ctx: BlockContext, result: BlockResult, txs: Sequence[SignedTx]
) -> None:
    block = build_block(
        chain_id=CHAIN_ID,
        height=ctx.height,
        time_ms=ctx.time_ms,
        prev_hash=get_block_hash(store, ctx.height - 1) or b"",
        state_hash=result.state_hash,
        proposer="aclb",
        validator_set_hash=bytes(32),
        last_commit_hash=NO_COMMIT_HASH,
        txs=txs,
    )
    commit_block(store, block, None, result)


def run_block(
    store: LevelDBStore, txs: list[SignedTx], timings: Timings, verify: bool, profile: Profiler
) -> None:
    """Verify (optionally), apply and commit one block, adding each phase's time."""
    marks = [now()]
    if verify:
        verify_all(txs)
    marks.append(now())
    if profile is not None:
        profile.enable()
    ctx, result = apply_next(store, txs)
    if profile is not None:
        profile.disable()
    marks.append(now())
    commit_next(store, ctx, result, txs)
    marks.append(now())
    for phase, (cpu0, wall0), (cpu1, wall1) in zip(PHASES, marks[:-1], marks[1:], strict=True):
        timings.add(phase, cpu1 - cpu0, wall1 - wall0)


def run_chain(
    genesis: Genesis, blocks: list[list[SignedTx]], verify: bool, profile: Profiler
) -> Timings:
    """Run every block through a fresh LevelDB store, timing each phase separately."""
    timings = Timings()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        store = LevelDBStore(Path(tmp) / "db")
        load_genesis_into(store, genesis)
        process0, thread0 = time.process_time(), time.thread_time()
        for txs in blocks:
            run_block(store, txs, timings, verify, profile)
        process1, thread1 = time.process_time(), time.thread_time()
        store.close()
    timings.background_cpu = (process1 - process0) - (thread1 - thread0)
    timings.cpu["commit"] += timings.background_cpu
    return timings


def rate(count: int, seconds: float) -> int:
    return round(count / seconds) if seconds > 0 else 0


def make_report(count: int, phases: Timings, end_to_end: Timings) -> dict[str, object]:
    """Rates in tx/s: phases measured without verification, then all three together."""
    report: dict[str, object] = {
        "txs": count,
        "cpu_count": os.cpu_count(),
        "background_cpu_s": round(phases.background_cpu + end_to_end.background_cpu, 3),
    }
    for clock in ("cpu", "wall"):
        seconds = getattr(phases, clock)
        totals = getattr(end_to_end, clock)
        report[clock] = {
            "verify_tps": rate(count, totals["verify"]),
            "apply_tps": rate(count, seconds["apply"]),
            "commit_tps": rate(count, seconds["commit"]),
            "verify_apply_commit_tps": rate(count, sum(totals.values())),
        }
    return report


def print_report(report: dict[str, object]) -> None:
    print(f"txs {report['txs']:,}, cpu_count {report['cpu_count']}, {report['block_size']}/block")
    cpu, wall = report["cpu"], report["wall"]
    assert isinstance(cpu, dict) and isinstance(wall, dict)
    print(f"{'tx/s':>24} {'cpu time':>10} {'wall':>10}")
    for name in cpu:
        print(f"{name:>24} {cpu[name]:>10,} {wall[name]:>10,}")
    print(f"(LevelDB background threads: {report['background_cpu_s']} s of CPU, in commit)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--block-size", type=int, default=1_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", action="store_true", help="profile apply_block to stderr")
    args = parser.parse_args(argv)
    genesis, txs = make_workload(args.txs)
    # The 20,000 pre-signed txs are the bench's own heap, not the node's: keep the
    # collector from rescanning them (a node freezes its startup objects the same way).
    gc.collect()
    gc.freeze()
    blocks = [txs[i : i + args.block_size] for i in range(0, len(txs), args.block_size)]
    profile = cProfile.Profile() if args.profile else None
    phases = run_chain(genesis, blocks, verify=False, profile=profile)
    end_to_end = run_chain(genesis, blocks, verify=True, profile=None)
    report = make_report(len(txs), phases, end_to_end)
    report["block_size"] = args.block_size
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    if profile is not None:
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
