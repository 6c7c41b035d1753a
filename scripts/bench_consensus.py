#!/usr/bin/env python3
"""Consensus benchmark: n validators in the seeded simulator, no faults.

Every proposal and vote is really signed and verified (Ed25519, PyNaCl) by the state
machines; the network is the simulator's (1-15 ms virtual delay), the clock is virtual,
the rate is wall-clock on this machine (all validators share one process and one core).
Prints heights decided per second and messages per height for each n.

    .venv/bin/python scripts/bench_consensus.py [--heights 50] [--sizes 4,7,16] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.consensus.sim import Simulator


def measure(n: int, heights: int, seed: int) -> dict[str, Any]:
    """Run until every validator decided `heights` heights; wall time covers the run."""
    started = time.perf_counter()
    sim = Simulator(n, seed)
    sim.run(10**9, heights=heights)
    elapsed = time.perf_counter() - started
    sim.assert_safe()
    decided = min(len(node.decisions) for node in sim.nodes)
    return {
        "validators": n,
        "heights": decided,
        "seconds": round(elapsed, 3),
        "heights_per_second": round(decided / elapsed, 1),
        "messages_per_height": round(sim.messages_signed / decided, 1),
        "deliveries_per_height": round(sim.messages_sent / decided, 1),
        "virtual_ms_per_height": round(sim.now / decided, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", type=int, default=50)
    parser.add_argument("--sizes", default="4,7,16")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(int(n), args.heights, args.seed) for n in args.sizes.split(",")]
    report = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"cores: {report['cpus_usable']} usable of {report['cpu_count']} (one used)")
    print("  n  heights  heights/s  messages/height  deliveries/height  virtual ms/height")
    for r in results:
        print(
            f"{r['validators']:3d}  {r['heights']:7d}  {r['heights_per_second']:9.1f}"
            f"  {r['messages_per_height']:15.1f}  {r['deliveries_per_height']:17.1f}"
            f"  {r['virtual_ms_per_height']:17.1f}"
        )


if __name__ == "__main__":
    main()
