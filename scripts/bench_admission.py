#!/usr/bin/env python3
"""One node's admission rate (decode, checks, signature verification, persisted
mempool write): how it grows with the cores it may use and its verifier workers.

For each configuration this runs a child process pinned with `taskset -c CPUS` (the
verifier's workers inherit the pinning). The child builds a one-validator node in a
temporary home, in process (its P2P and consensus are not started: nothing else
competes), pre-signs the txs before timing, and then times `Node.submit_many` over
client batches of 500, exactly what `POST /v1/transactions/batch` runs, four requests in
flight at a time (as from several clients). It reports admitted txs per second of wall
time.

    scripts/bench_admission [--txs 20000] [--configs 0:0,0:1,0-1:0,0-1:1,0-1:2]
                            [--json-out FILE]

A config is CPUS:WORKERS, e.g. `0-1:2` = cores 0 and 1, two verifier workers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BATCH = 500
CLIENTS = 4


def child(txs: int, workers: int) -> dict[str, Any]:
    """In the pinned child: build the node, sign, time the admission."""
    sys.path.insert(0, str(ROOT))
    from cli.devnet.testnet import find_free_base, get_node_dir, init_testnet
    from ledger.commands import Transfer
    from ledger.tx import TxBody, sign_tx
    from node.config import load_config
    from node.keyfile import read_key_file
    from node.runtime import Node

    home = Path(tempfile.mkdtemp(prefix="bakong-admission."))
    try:
        # one validator; the other banks (never started) give the clients a signer each
        manifest = init_testnet(
            home, validators=1, observers=CLIENTS - 1, base_port=find_free_base(2 * CLIENTS)
        )
        entry = manifest.nodes[0]
        node_dir = get_node_dir(home, entry)
        config = load_config(node_dir / "node.toml")
        mempool = replace(
            config.mempool, capacity=txs + 10, nonce_window=txs + 10, verify_workers=workers
        )
        config = replace(config, mempool=mempool)
        now = int(time.time() * 1000)
        per_client: list[list[list[bytes]]] = []
        banks = [n.bank for n in manifest.nodes]
        for index, bank in enumerate(banks):
            key = read_key_file(get_node_dir(home, manifest.nodes[index]) / "operator_key.json")
            signer, payee = f"admin@{bank}", f"admin@{banks[(index + 1) % len(banks)]}"
            raws = [
                sign_tx(
                    TxBody(1, manifest.chain_id, signer, nonce, now,
                           (Transfer(signer, payee, "KHR", 1),), ""),
                    key,
                ).encode()
                for nonce in range(txs // CLIENTS)
            ]  # fmt: skip
            per_client.append([raws[i : i + BATCH] for i in range(0, len(raws), BATCH)])

        async def run() -> dict[str, Any]:
            node = Node(config)
            node.verifier.start()
            try:
                if workers:  # the workers' start-up is not the node's admission rate
                    await node.verifier.verify([])
                admitted = 0

                async def client(mine: list[list[bytes]]) -> None:
                    nonlocal admitted
                    for batch in mine:
                        results = await node.submit_many(batch)
                        admitted += sum(1 for r in results if "error" not in r)

                cpu0, t0 = time.process_time(), time.perf_counter()
                # CLIENTS requests in flight, as from several clients (or peers' gossip),
                # each a signer of its own sending its batches in nonce order
                await asyncio.gather(*(client(mine) for mine in per_client))
                wall = time.perf_counter() - t0
                cpu = time.process_time() - cpu0
            finally:
                node.verifier.close()
                node.store.close()
            return {
                "admitted": admitted,
                "wall_s": round(wall, 3),
                "tps": round(admitted / wall),
                "node_cpu_s": round(cpu, 3),
                "pooled": node.verifier.pooled,
            }

        return asyncio.run(run())
    finally:
        shutil.rmtree(home, ignore_errors=True)


def cpus_arg(text: str) -> str:
    return text.replace("-", ",") if text.count("-") == 1 and "," not in text else text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--configs", default="0:0,0:1,0-1:0,0-1:1,0-1:2")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    if shutil.which("taskset") is None:
        print("error: taskset_missing: taskset (util-linux) is needed", file=sys.stderr)
        return 2
    rows = []
    for config in args.configs.split(","):
        cpus, _, workers = config.partition(":")
        command = ["taskset", "-c", cpus_arg(cpus), sys.executable, __file__,
                   "--txs", str(args.txs), "--child", str(args.txs), workers]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
        if done.returncode != 0:
            print(f"error: run_failed: {config}: {done.stderr.strip()[-500:]}", file=sys.stderr)
            return 1
        report = json.loads(done.stdout.strip().splitlines()[-1])
        row = {"cpus": cpus, "cores": len(cpus_arg(cpus).split(",")), "workers": int(workers)}
        rows.append(row | report)
        print(f"cores {row['cores']} ({cpus}), workers {workers}: {report['tps']:,} tx/s "
              f"admitted ({report['admitted']:,} in {report['wall_s']} s)",
              file=sys.stderr)  # fmt: skip
    base = rows[0]["tps"]
    print(f"machine: {os.cpu_count()} cores; {args.txs:,} txs per run, batches of {BATCH}\n")
    print("| cores | verifier workers | admitted tx/s | vs first row |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['cores']} | {row['workers']} | {row['tps']:,} | {row['tps'] / base:.2f} |")
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
