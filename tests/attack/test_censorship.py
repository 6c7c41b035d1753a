"""Issue 11, item 7: a customer censors the chain with nonce gaps, mounted against real
node processes on 127.0.0.1.

A tx behind a nonce gap can never execute until the gap fills. It must not make the
chain spin through empty blocks (every node stays at its height while only such txs
are pending), and a flood of them must not delay anyone else's tx: a signer queues at
most `max_queued_per_signer` of them and the surplus is refused with `queue_full`.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from ledger.commands import CreateAccount, Transfer
from ledger.crypto import PrivateKey
from ledger.tx import SignedTx, TxBody, sign_tx
from node.config import MempoolConfig
from tests.node.netutil import Net, http, running_testnet, wait_for

pytestmark = pytest.mark.slow

QUEUE_CAP = MempoolConfig().max_queued_per_signer
STILL_S = 4.0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    with running_testnet(tmp_path_factory.mktemp("censorship")) as running:
        yield running


def committed_nonce(net: Net, account: str) -> int:
    code, body = http(f"{net.url(net.names[0])}/v1/accounts/{account}")
    assert code == 200, body
    return int(body["nonce"])


def pay(net: Net, signer: str, key: PrivateKey, nonce: int, to: str) -> SignedTx:
    cmd = Transfer(signer, to, "KHR", 1)
    body = TxBody(1, net.chain_id, signer, nonce, int(time.time() * 1000), (cmd,), "")
    return sign_tx(body, key)


def submit_batch(net: Net, name: str, txs: list[SignedTx]) -> list[dict[str, Any]]:
    body = json.dumps({"txs": [tx.encode().hex() for tx in txs]}).encode()
    code, reply = http(f"{net.url(name)}/v1/transactions/batch", body, timeout=120)
    assert code == 200, reply
    results: list[dict[str, Any]] = reply["results"]
    return results


def mempool_sizes(net: Net) -> dict[str, int | None]:
    """Mempool sizes of the validators: the observer follows (it takes no gossip, so
    holds only what its own clients send it)."""
    out: dict[str, int | None] = {}
    for name in net.validators:
        status = net.status(name)
        out[name] = status["mempool"] if status else None
    return out


def wait_pending_everywhere(net: Net, count: int) -> None:
    """Every validator holds `count` pending txs (gossip has carried them)."""
    wait_for(
        lambda: all(size == count for size in mempool_sizes(net).values()),
        60,
        f"{count} pending txs on every validator",
    )


def heights_while_still(net: Net, seconds: float) -> list[dict[str, int | None]]:
    """Every node's height, polled for `seconds`: one entry per distinct reading."""
    readings = [net.heights()]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = net.heights()
        if now != readings[-1]:
            readings.append(now)
    return readings


def create_customers(net: Net, bank: str, count: int) -> list[tuple[str, PrivateKey]]:
    """`count` keyed customer accounts of `bank`, created by its operator and committed."""
    made = [(f"gap{i}@{bank}", PrivateKey.generate()) for i in range(count)]
    operator = f"admin@{bank}"
    nonce = committed_nonce(net, operator)
    txs: list[SignedTx] = []
    for start in range(0, count, 32):
        cmds = tuple(CreateAccount(a, k.public_key) for a, k in made[start : start + 32])
        txs.append(net.sign(bank, cmds, nonce=nonce + len(txs)))
    for tx in txs:
        assert net.submit(bank, tx)[0] == 202
    net.wait_committed(bank, [tx.hash.hex() for tx in txs])
    net.wait_converged()
    return made


def test_one_gap_tx_makes_no_empty_blocks(net: Net) -> None:
    bank, other = net.validators[1], net.validators[2]
    signer = f"admin@{bank}"
    net.wait_converged()
    nonce = committed_nonce(net, signer)
    cmd = Transfer(signer, f"admin@{other}", "KHR", 1)
    gap = net.sign(bank, (cmd,), nonce=nonce + 1)
    assert net.submit(bank, gap)[0] == 202
    wait_pending_everywhere(net, 1)
    readings = heights_while_still(net, STILL_S)
    # the missing nonce arrives: both commit, in order
    filler = net.sign(bank, (cmd,), nonce=nonce)
    assert net.submit(other, filler)[0] == 202
    net.wait_committed(bank, [filler.hash.hex(), gap.hash.hex()], timeout=30)
    net.wait_converged()
    assert committed_nonce(net, signer) == nonce + 2
    assert len(readings) == 1, f"heights moved with only a gap tx pending: {readings}"


def test_gap_flood_is_refused_beyond_the_cap_and_delays_no_one(net: Net) -> None:
    bank, other = net.validators[2], net.validators[3]
    customers = create_customers(net, bank, 100)
    target = f"admin@{other}"
    # 6 accounts, 1,000 txs each after a missing nonce 0: each queues QUEUE_CAP of them
    heavy = customers[:6]
    flood = [pay(net, a, k, n, target) for a, k in heavy for n in range(1, 1001)]
    results = submit_batch(net, bank, flood)
    admitted = [tx for tx, r in zip(flood, results, strict=True) if "error" not in r]
    codes = Counter(r["error"]["code"] for r in results if "error" in r)
    assert len(admitted) == 6 * QUEUE_CAP
    assert {tx.body.nonce for tx in admitted} == set(range(1, QUEUE_CAP + 1))
    # nonce 1000 is past the nonce window; the rest find the signer's queue full
    assert codes == {"queue_full": 6 * (999 - QUEUE_CAP), "bad_nonce": 6}
    # as many as the cap allows from 94 more signers: all admitted
    wide = [pay(net, a, k, n, target) for a, k in customers[6:] for n in range(1, QUEUE_CAP + 1)]
    assert all("error" not in r for r in submit_batch(net, bank, wide))
    queued = len(admitted) + len(wide)
    wait_pending_everywhere(net, queued)
    # an ordinary transfer commits at once, on every node
    start = time.monotonic()
    cmd = Transfer(target, f"admin@{bank}", "KHR", 1)
    honest = net.sign(other, (cmd,), nonce=committed_nonce(net, target))
    assert net.submit(other, honest)[0] == 202
    for name in net.names:
        net.wait_committed(name, [honest.hash.hex()], timeout=30)
    elapsed = time.monotonic() - start
    assert elapsed < 5.0, f"the transfer took {elapsed:.1f}s behind {queued} queued txs"
    net.wait_converged()
    # and with only gap txs pending, the chain is still again
    assert all(size == queued for size in mempool_sizes(net).values())
    observer = net.status(net.names[-1])
    assert observer is not None and observer["mempool"] == 0  # a follower
    readings = heights_while_still(net, STILL_S)
    assert len(readings) == 1, f"heights moved with only gap txs pending: {readings}"
