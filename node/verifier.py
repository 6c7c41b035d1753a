"""Tx signature checks off the event loop, so that a node with spare cores uses them.

`[mempool] verify_workers = N` gives the node N worker processes. Admission (client
batches and gossip) first runs the cheap checks that decide whether a signature is worth
verifying at all (`Mempool.needs_verification`), then sends those txs' signatures to the
workers in one chunk per worker, awaiting them while the event loop goes on with
consensus, and enters the ones that verify in the shared verified-signature cache; the
admission checks then find them there. Threads would not do: PyNaCl takes the GIL back
after every signature, so a verifying thread waits for a busy event loop's switch
interval each time (measured: 13,600 verifies/s alone, 1,230/s beside a busy thread).

0 workers (the default) verifies inline, which is best where nodes already share the
cores (a local testnet of five nodes on two cores). A pool that breaks (a worker killed)
is dropped with one log line, and verification goes on inline.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ledger.crypto import verify_root
from ledger.tx import SignedTx, compute_tx_signing_root, is_signature_valid

log = logging.getLogger("bakong.verifier")

# A job: the signing root and every (public key, signature) of one tx.
Job = tuple[bytes, list[tuple[bytes, bytes]]]
# Below this many txs a batch is verified inline: the round trip would cost more.
MIN_POOLED = 16


def verify_jobs(jobs: Sequence[Job]) -> list[bool]:
    """In a worker: for each tx, at least one signature and every one verifies (the rule
    of `ledger.tx.is_signature_valid`)."""
    return [
        bool(sigs) and all(verify_root(pk, root, sig) for pk, sig in sigs) for root, sigs in jobs
    ]


def _job(tx: SignedTx) -> Job:
    return compute_tx_signing_root(tx.hash), [(s.public_key, s.signature) for s in tx.signatures]


class Verifier:
    def __init__(self, workers: int = 0) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self.pooled = 0  # txs verified by the workers
        self.inline = 0  # txs verified here

    def start(self) -> None:
        if self.workers > 0 and self._pool is None:
            # spawn, not fork: the node's process has threads (LevelDB's, asyncio's)
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def verify(self, txs: Sequence[SignedTx]) -> list[bool]:
        """Whether each tx's signatures verify, in order."""
        pool = self._pool
        if pool is None or len(txs) < MIN_POOLED:
            self.inline += len(txs)
            return [is_signature_valid(tx) for tx in txs]
        jobs = [_job(tx) for tx in txs]
        size = -(-len(jobs) // self.workers)
        loop = asyncio.get_running_loop()
        try:
            parts = await asyncio.gather(
                *(
                    loop.run_in_executor(pool, verify_jobs, jobs[i : i + size])
                    for i in range(0, len(jobs), size)
                )
            )
        except (BrokenProcessPool, RuntimeError, OSError) as exc:
            log.error("signature workers failed (%s); verifying inline from now on", exc)
            self.close()
            self.workers = 0
            self.inline += len(txs)
            return [is_signature_valid(tx) for tx in txs]
        self.pooled += len(txs)
        return [ok for part in parts for ok in part]
