"""Signature checks in worker processes (`[mempool] verify_workers`): the pool gives the
same verdicts as inline verification, in order; a broken pool falls back to inline; and
real nodes with workers admit client batches and gossip, refuse a forged tx in a batch
(`bad_signature`, never committed), and commit the rest on every node."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from ledger.tx import SignedTx, TxSignature
from node.config import NodeConfig
from node.verifier import MIN_POOLED, Verifier
from tests.node.netutil import http, running_testnet
from tests.node.test_engine import ALICE, MALLORY, forge, pay


def mixed(count: int) -> tuple[list[SignedTx], list[bool]]:
    """Good txs with a zero signature, a foreign key's and no signature among them."""
    txs, expected = [], []
    for i in range(count):
        tx = pay(i)
        if i % 7 == 3:
            tx, ok = forge(tx, ALICE.public_key), False
        elif i % 7 == 5:
            tx, ok = pay(i, key=MALLORY), True  # verifies (the key check is the mempool's)
        elif i % 11 == 6:
            tx, ok = SignedTx(tx.body, ()), False
        elif i % 13 == 8:
            sig = tx.signatures[0]
            flipped = bytes([sig.signature[0] ^ 1]) + sig.signature[1:]
            tx, ok = SignedTx(tx.body, (TxSignature(sig.public_key, flipped),)), False
        else:
            ok = True
        txs.append(tx)
        expected.append(ok)
    return txs, expected


def test_the_pool_gives_the_inline_verdicts_in_order() -> None:
    async def main() -> None:
        verifier = Verifier(2)
        verifier.start()
        try:
            txs, expected = mixed(120)
            assert await verifier.verify(txs) == expected
            assert verifier.pooled == 120 and verifier.inline == 0
            small, small_expected = mixed(MIN_POOLED - 1)
            assert await verifier.verify(small) == small_expected
            assert verifier.inline == MIN_POOLED - 1
        finally:
            verifier.close()

    asyncio.run(main())


def test_a_broken_pool_falls_back_to_inline() -> None:
    async def main() -> None:
        verifier = Verifier(1)
        verifier.start()
        try:
            txs, expected = mixed(40)
            assert await verifier.verify(txs) == expected
            pool = verifier._pool
            assert pool is not None
            for process in list(pool._processes.values()):  # a worker killed
                os.kill(process.pid, signal.SIGKILL)
            assert await verifier.verify(txs) == expected
            assert verifier.workers == 0 and verifier.inline == 40
        finally:
            verifier.close()

    asyncio.run(main())


def with_workers(config: NodeConfig) -> NodeConfig:
    return replace(config, mempool=replace(config.mempool, verify_workers=2))


@pytest.mark.slow
def test_nodes_with_workers_admit_batches_and_gossip(tmp_path: Path) -> None:
    with running_testnet(tmp_path, validators=2, observers=1, configure=with_workers) as net:
        good = [net.transfer("aclb", "aba", 1 + i) for i in range(60)]
        forged = forge(net.transfer("aba", "aclb", 5), net.operator_key("aba").public_key)
        batch = [tx.encode().hex() for tx in good[:30]] + [forged.encode().hex()]
        code, body = http(
            net.url("aclb") + "/v1/transactions/batch", json.dumps({"txs": batch}).encode()
        )
        assert code == 200, body
        results = body["results"]
        assert [r.get("hash") for r in results[:30]] == [tx.hash.hex() for tx in good[:30]]
        assert all("error" not in r for r in results[:30])
        assert results[30]["error"]["code"] == "bad_signature"
        # the rest through the observer, whose workers verify them too
        rest = [tx.encode().hex() for tx in good[30:]]
        code, body = http(
            net.url(net.names[-1]) + "/v1/transactions/batch", json.dumps({"txs": rest}).encode()
        )
        assert code == 200 and all("error" not in r for r in body["results"]), body
        for name in net.names:
            net.wait_committed(name, [tx.hash.hex() for tx in good])
        net.wait_converged()
        for name in net.names:
            assert net.tx_status(name, forged.hash.hex()) is None
