"""Integration: crashes (kill -9), a lost quorum, restarts and catch-up on a real testnet."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node.netutil import Net, running_testnet, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    with running_testnet(tmp_path) as running:
        yield running


def _evidence(net: Net, name: str) -> float:
    for line in net.metrics(name).splitlines():
        if line.startswith("bakong_evidence_total "):
            return float(line.split()[1])
    raise AssertionError("no evidence metric")


def _submit_all(net: Net, name: str, txs: list) -> list[str]:
    hashes = []
    for tx in txs:
        code, body = net.submit(name, tx)
        assert code == 202, body
        hashes.append(body["hash"])
    return hashes


def test_one_crash_tolerated_two_halt_restart_converges(net: Net) -> None:
    net.kill("wing")
    hashes = _submit_all(net, "nbc", [net.transfer("aclb", "aba", 1) for _ in range(10)])
    net.wait_committed("aclb", hashes)

    net.kill("aba")
    live = ["nbc", "aclb", "canadia"]
    halted = net.wait_converged(live)
    stuck = _submit_all(net, "nbc", [net.issue("aclb", 2) for _ in range(5)])
    # Two of four validators down: no quorum, so nothing commits and nobody forks.
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        for name in live:
            status = net.status(name)
            assert status is not None and status["height"] == halted["height"]
            assert status["block_hash"] == halted["block_hash"]
        time.sleep(0.3)
    assert net.tx_status("nbc", stuck[0])["status"] == "pending"

    net.up()
    net.wait_committed("wing", stuck + hashes, timeout=90)
    net.wait_converged(timeout=90)
    assert all(_evidence(net, name) == 0 for name in net.names)


def test_killed_during_load_catches_up_without_double_signing(net: Net) -> None:
    stop = threading.Event()
    submitted: list[str] = []

    def load() -> None:
        i = 0
        while not stop.is_set():
            # Between funded banks: the mempool interleaves signers fairly, so a payment
            # that only another signer's pending payment would fund may be rejected.
            tx = net.transfer("aba", "aclb", 1) if i % 2 else net.transfer("aclb", "aba", 1)
            target = "nbc" if i % 2 else "aclb"
            code, body = net.submit(target, tx)
            if code == 202:
                submitted.append(body["hash"])
            i += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        wait_for(lambda: len(submitted) > 50, 60, "load under way")
        net.kill("wing")
        wait_for(lambda: len(submitted) > 150, 60, "load while wing is down")
        net.up()
        wait_for(lambda: len(submitted) > 250, 60, "load after the restart")
    finally:
        stop.set()
        worker.join()
    net.wait_committed("wing", submitted, timeout=120)
    net.wait_converged(timeout=90)
    assert all(_evidence(net, name) == 0 for name in net.names)


def test_acknowledged_txs_survive_a_crash(net: Net) -> None:
    txs = [net.transfer("aba", "wing", 1) for _ in range(100)]
    hashes = _submit_all(net, "aba", txs)
    net.kill("aba")
    net.up()
    net.wait_committed("aba", hashes, timeout=90)
    net.wait_converged(timeout=90)
