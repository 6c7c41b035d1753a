"""Integration: a compact proposal reaches a peer after the gossip of the txs it names.

Two validators, and every tx is sent to the first. Its proposals name txs it admitted
from its client moments before. The second validator must already hold each of them
when such a proposal arrives, so neither validator ever asks for a full block. Before
the fix, the proposal overtook that gossip in the send queue (consensus frames go
first), and the second validator fetched many of the first one's blocks in full."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.node.netutil import http, running_testnet, wait_for

pytestmark = pytest.mark.slow


def fetched_proposals(metrics: str) -> int:
    found = re.findall(r"^bakong_fetched_proposals_total\{[^}]*\} (\S+)$", metrics, re.M)
    return sum(int(float(value)) for value in found)


def test_a_peer_holds_the_txs_of_a_proposal_when_it_arrives(tmp_path: Path) -> None:
    with running_testnet(tmp_path, validators=2, observers=0) as net:
        origin, other = net.validators
        start = wait_for(lambda: net.status(origin), 30, "serving")["height"]
        hashes: list[str] = []
        # 20 txs every 20 ms for 4 s: about 1,000 tx/s, all admitted at the origin
        stop = time.monotonic() + 4.0
        while time.monotonic() < stop:
            txs = [net.issue(other) for _ in range(20)]
            body = json.dumps({"txs": [tx.encode().hex() for tx in txs]}).encode()
            code, answer = http(net.url(origin) + "/v1/transactions/batch", body)
            assert code == 200 and all("error" not in r for r in answer["results"]), answer
            hashes += [tx.hash.hex() for tx in txs]
            time.sleep(0.02)
        # one signer, nonces in order: the last committed means all are
        net.wait_committed(origin, hashes[-1:], timeout=120)
        net.wait_committed(other, hashes[-1:], timeout=120)
        height = net.wait_converged()["height"]
        assert height >= start + 6  # both validators proposed blocks of these txs
        assert [fetched_proposals(net.metrics(name)) for name in (origin, other)] == [0, 0]
