"""Shared verification inside one node process (node/runtime.py with node/attest.py): the
node built from a real testnet home, not started; gossip and attestations fed to its
handlers as its P2P layer would, and what it sends captured.

What must hold (the attacks themselves run against real processes in
tests/attack/test_vouching.py):
- a held batch whose origin and designated verifiers all vouch is admitted without a
  signature check; one vouched for by fewer, or by validators that are not designated,
  is verified here after the wait;
- only what every counted voucher believes is trusted: a forged tx they did not mark is
  verified here and refused;
- a node that peers say is far ahead holds nothing and verifies everything itself;
- txs a connecting peer resends (TX_RESEND) are verified here, never held;
- a designated verifier attests the txs it believes, junk left unmarked, to the
  validators that hold the batch only;
- stopping cancels every held batch;
- a compact proposal naming held txs is resumed when their batch is admitted, or after
  a short wait;
- a compact proposal goes out behind the gossip queued before it, and a client's tx is
  queued for gossip before the loop yields (a proposal built then may name it).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from consensus.validators import ValidatorSet
from ledger.crypto import PrivateKey
from ledger.tx import SignedTx, TxSignature
from node import messages as msg
from node import runtime
from node.attest import compute_batch_digest, encode_bitmap
from node.config import load_config
from node.keyfile import read_key_file
from node.runtime import GOSSIP_FLUSH_S, GOSSIP_MAX_BATCH, Node, chunk_gossip
from tests.node.netutil import FAST, Net, init_on_free_ports

ME = "aclb"  # ledger order: aba, aclb, nbc, wing (quorum 3: an origin and the 2 after it)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Net]]:
    path = tmp_path_factory.mktemp("vouching-runtime") / "testnet"
    manifest = init_on_free_ports(path, validators=4, observers=1, consensus=FAST)
    yield path, Net(path, manifest)


def key_of(net: Net, name: str) -> bytes:
    return read_key_file(net.node_dir(name) / "node_key.json").public_key


def run_node(
    home: tuple[Path, Net],
    tmp_path: Path,
    scenario: Callable[[Node, list[tuple[bytes, int, Any]]], Coroutine[Any, Any, None]],
    wait_ms: int = 200,
) -> None:
    """Build ME's node on a copy of its home (fresh store), record what it sends, run
    `scenario`, then stop it."""
    _, net = home
    config = load_config(net.node_dir(ME) / "node.toml")
    config = replace(
        config,
        path=config.path,
        data_dir=str(tmp_path / "data"),
        mempool=replace(config.mempool, vouch_wait_ms=wait_ms),
    )
    node = Node(config)
    sent: list[tuple[bytes, int, Any]] = []
    node.p2p.send = lambda peer, kind, payload, droppable=False: bool(  # type: ignore[method-assign]
        sent.append((peer, kind, payload)) or True
    )

    async def main() -> None:
        try:
            await scenario(node, sent)
        finally:
            await node.stop()

    asyncio.run(main())


def validators(node: Node) -> ValidatorSet:
    return node.engine.get_validators(node.engine.height + 1)


def gossip(net: Net, count: int) -> list[SignedTx]:
    return [net.transfer("wing", "aba", 1 + i) for i in range(count)]


def forged(net: Net) -> SignedTx:
    tx = net.transfer("wing", "aba", 99)
    return SignedTx(tx.body, (TxSignature(tx.signatures[0].public_key, bytes(64)),))


async def settle(node: Node) -> None:
    while node._vouch_tasks:
        await asyncio.sleep(0.01)


def checks(node: Node) -> int:
    return node.mempool.verified.checks


def test_a_batch_its_verifiers_vouch_for_is_admitted_unverified(
    home: tuple[Path, Net], tmp_path: Path
) -> None:
    _, net = home
    net.nonces.clear()
    txs = gossip(net, 3)
    origin, first, second = key_of(net, "nbc"), key_of(net, "wing"), key_of(net, "aba")

    async def scenario(node: Node, sent: list[tuple[bytes, int, Any]]) -> None:
        assert node.attestations.designated(validators(node), origin, b"") == (first, second)
        digest = compute_batch_digest([tx.wire_hash for tx in txs])
        everything = encode_bitmap([True] * len(txs))
        await node._on_tx_batch(origin, [tx.encode() for tx in txs])
        assert node.attestations.is_held(origin, digest) and len(node.mempool) == 0
        node._on_attest(first, [digest, everything])
        node._on_attest(key_of(net, "canadia"), [digest, everything])  # no validator
        node._on_attest(first, [digest, everything])  # twice: still one voucher
        assert node.attestations.is_held(origin, digest)
        node._on_attest(second, [digest, everything])
        await settle(node)
        assert len(node.mempool) == 3 and checks(node) == 0  # nothing verified here
        assert all(tx.wire_hash in node.mempool.verified for tx in txs)
        assert node.metrics.vouched_batches == 1 and node.metrics.ignored_attestations == 1
        assert sent == []  # not a verifier of nbc's batches: it attests nothing

    run_node(home, tmp_path, scenario)


def test_only_what_every_voucher_believes_is_trusted(
    home: tuple[Path, Net], tmp_path: Path
) -> None:
    _, net = home
    net.nonces.clear()
    good = gossip(net, 2)
    bad = forged(net)
    batch = [*good, bad]
    origin, first, second = key_of(net, "nbc"), key_of(net, "wing"), key_of(net, "aba")

    async def scenario(node: Node, sent: list[tuple[bytes, int, Any]]) -> None:
        digest = compute_batch_digest([tx.wire_hash for tx in batch])
        await node._on_tx_batch(origin, [tx.encode() for tx in batch])
        node._on_attest(first, [digest, encode_bitmap([True, True, True])])  # lies
        node._on_attest(second, [digest, encode_bitmap([True, True, False])])
        await settle(node)
        assert checks(node) == 1  # the forged one, verified here
        assert bad.hash not in node.mempool and bad.wire_hash not in node.mempool.verified
        assert all(tx.hash in node.mempool for tx in good)

    run_node(home, tmp_path, scenario)


def test_a_batch_not_vouched_for_is_verified_after_the_wait(
    home: tuple[Path, Net], tmp_path: Path
) -> None:
    _, net = home
    net.nonces.clear()
    txs = gossip(net, 2)
    origin, first = key_of(net, "nbc"), key_of(net, "wing")
    outsider = key_of(net, ME)  # a validator, but not one of nbc's verifiers

    async def scenario(node: Node, sent: list[tuple[bytes, int, Any]]) -> None:
        digest = compute_batch_digest([tx.wire_hash for tx in txs])
        await node._on_tx_batch(origin, [tx.encode() for tx in txs])
        node._on_attest(first, [digest, encode_bitmap([True, True])])
        node._on_attest(outsider, [digest, encode_bitmap([True, True])])
        await settle(node)
        assert checks(node) == 2 and len(node.mempool) == 2
        assert node.metrics.unvouched_batches == 1 and node.metrics.vouched_batches == 0

    run_node(home, tmp_path, scenario, wait_ms=50)


def test_a_node_far_behind_verifies_everything_itself(
    home: tuple[Path, Net], tmp_path: Path
) -> None:
    _, net = home
    net.nonces.clear()
    txs = gossip(net, 2)
    origin = key_of(net, "nbc")

    async def scenario(node: Node, sent: list[tuple[bytes, int, Any]]) -> None:
        node.engine.sync.on_claim(origin, node.engine.height + 10)
        await node._on_tx_batch(origin, [tx.encode() for tx in txs])
        assert len(node.attestations) == 0  # nothing held
        assert checks(node) == 2 and len(node.mempool) == 2

    run_node(home, tmp_path, scenario)


def test_resent_txs_are_verified_here(home: tuple[Path, Net], tmp_path: Path) -> None:
    _, net = home
    net.nonces.clear()
    txs = gossip(net, 2)

    async def scenario(node: Node, sent: list[tuple[bytes, int, Any]]) -> None:
        await node._on_tx_resend(key_of(net, "nbc"), [tx.encode() for tx in txs])
        assert len(node.attestations) == 0
        assert checks(node) == 2 and len(node.mempool) == 2

    run_node(home, tmp_path, scenario)


def test_a_verifier_attests_what_it_believes_to_the_holders_only(
    home: tuple[Path, Net], tmp_path: Path
) -> None:
    _, net = home
    net.nonces.clear()
    txs = gossip(net, 2)
    junk = forged(net)
    stranger = replace(
        txs[0], signatures=(TxSignature(PrivateKey.generate().public_key, bytes(64)),)
    )
    batch = [txs[0], junk, stranger, txs[1]]
    origin = key_of(net, "aba")  # aclb verifies aba's batches, with nbc

    async def scenario(node: Node, sent: list[tuple[bytes, int, Any]]) -> None:
        assert key_of(net, ME) in node.attestations.designated(validators(node), origin, b"")
        await node._on_tx_batch(origin, [tx.encode() for tx in batch])
        digest = compute_batch_digest([tx.wire_hash for tx in batch])
        # the forged one verified and failed; the stranger's key refused before any check
        assert checks(node) == 3
        assert [(peer, kind) for peer, kind, _ in sent] == [(key_of(net, "wing"), msg.ATTEST)]
        assert sent[0][2] == [digest, encode_bitmap([True, False, False, True])]

    run_node(home, tmp_path, scenario)


def test_stopping_cancels_held_batches(home: tuple[Path, Net], tmp_path: Path) -> None:
    _, net = home
    net.nonces.clear()
    txs = gossip(net, 2)
    held: list[asyncio.Task[None]] = []

    async def scenario(node: Node, sent: list[tuple[bytes, int, Any]]) -> None:
        await node._on_tx_batch(key_of(net, "nbc"), [tx.encode() for tx in txs])
        held.extend(node._vouch_tasks)
        assert len(held) == 1 and not held[0].done()

    run_node(home, tmp_path, scenario, wait_ms=60_000)
    assert held[0].cancelled()


def test_a_proposal_naming_held_txs_is_judged_once_their_batch_is_admitted(
    home: tuple[Path, Net], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Engine.await_held`: the node resumes a compact proposal that names held txs when
    their batch is admitted on its vouchers, so the judge verifies none of them; it
    declines when no batch holds them."""
    _, net = home
    net.nonces.clear()
    txs = gossip(net, 2)
    origin = key_of(net, "nbc")  # wing and aba verify nbc's batches
    monkeypatch.setattr(runtime, "AWAIT_HELD_FRACTION", 1000)  # no time limit here

    async def scenario(node: Node, sent: list[tuple[bytes, int, Any]]) -> None:
        assert not node._await_held([txs[0].hash], lambda: None)
        await node._on_tx_batch(origin, [tx.encode() for tx in txs])
        admitted_when_resumed: list[bool] = []
        resumed = asyncio.Event()

        def resume() -> None:
            admitted_when_resumed.append(txs[0].hash in node.mempool)
            resumed.set()

        assert node._await_held([txs[0].hash, bytes(32)], resume)
        await asyncio.sleep(0.05)
        assert not resumed.is_set()
        digest = compute_batch_digest([tx.wire_hash for tx in txs])
        for name in ("wing", "aba"):
            node._on_attest(key_of(net, name), [digest, encode_bitmap([True, True])])
        await asyncio.wait_for(resumed.wait(), 10)
        assert admitted_when_resumed == [True] and checks(node) == 0
        assert node.metrics.awaited_wait.count == 1  # its wait, in the histogram

    run_node(home, tmp_path, scenario, wait_ms=60_000)


async def hold_a_reordered_copy(node: Node, net: Net, copier: bytes, txs: list[SignedTx]) -> bytes:
    """`copier` gossips `txs` in an order whose designated verifiers leave this node out,
    so the copy is held here (and no one will vouch for it); its digest."""
    me = key_of(net, ME)
    copy = next(
        order
        for order in itertools.permutations(txs)
        if me
        not in node.attestations.designated(
            validators(node), copier, compute_batch_digest([tx.wire_hash for tx in order])
        )
    )
    await node._on_tx_batch(copier, [tx.encode() for tx in copy])
    digest = compute_batch_digest([tx.wire_hash for tx in copy])
    assert node.attestations.is_held(copier, digest)
    return digest


def test_a_copy_of_a_batch_no_one_vouches_for_does_not_hold_a_proposal_back(
    home: tuple[Path, Net], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another peer resends an origin's txs in another order (another digest), to this
    node alone, where they are held too: no one will vouch for that copy. Once the
    origin's own batch is admitted on its vouchers, the proposal naming the txs goes on;
    it does not wait for the copy's wait to end."""
    _, net = home
    net.nonces.clear()
    txs = gossip(net, 5)  # 120 orders: one leaves this node out but with odds of 1e-15
    origin, copier = key_of(net, "nbc"), key_of(net, "canadia")  # canadia: no validator
    monkeypatch.setattr(runtime, "AWAIT_HELD_FRACTION", 1000)  # no time limit here

    async def scenario(node: Node, sent: list[tuple[bytes, int, Any]]) -> None:
        await node._on_tx_batch(origin, [tx.encode() for tx in txs])
        copy_digest = await hold_a_reordered_copy(node, net, copier, txs)
        resumed = asyncio.Event()
        assert node._await_held([tx.hash for tx in txs], resumed.set)
        digest = compute_batch_digest([tx.wire_hash for tx in txs])
        for name in ("wing", "aba"):
            node._on_attest(key_of(net, name), [digest, encode_bitmap([True] * 5)])
        await asyncio.wait_for(resumed.wait(), 10)  # the copy waits 60 s
        assert all(tx.hash in node.mempool for tx in txs) and checks(node) == 0
        assert node.attestations.is_held(copier, copy_digest)

    run_node(home, tmp_path, scenario, wait_ms=60_000)


def test_a_held_copy_does_not_hold_a_proposal_back_once_its_txs_come_another_way(
    home: tuple[Path, Net], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a peer's reordered copy of the txs is held here; the origin's own batch is
    one this node verifies itself, admitted at once, with no held batch ending: the
    proposal waiting for the txs goes on then too."""
    _, net = home
    net.nonces.clear()
    txs = gossip(net, 5)
    origin, copier = key_of(net, "aba"), key_of(net, "canadia")  # aclb verifies aba's
    monkeypatch.setattr(runtime, "AWAIT_HELD_FRACTION", 1000)  # no time limit here

    async def scenario(node: Node, sent: list[tuple[bytes, int, Any]]) -> None:
        await hold_a_reordered_copy(node, net, copier, txs)
        resumed = asyncio.Event()
        assert node._await_held([tx.hash for tx in txs], resumed.set)
        await node._on_tx_batch(origin, [tx.encode() for tx in txs])  # verified here
        await asyncio.wait_for(resumed.wait(), 10)  # the copy waits 60 s
        assert all(tx.hash in node.mempool for tx in txs)
        assert node.attestations.lookup(txs[0].hash) is not None  # the copy, still held

    run_node(home, tmp_path, scenario, wait_ms=60_000)


def test_a_proposal_waits_for_held_txs_a_short_time_only(
    home: tuple[Path, Net], tmp_path: Path
) -> None:
    """No vouchers come: the proposal is resumed after a tenth of the propose timeout,
    the batch still held (the judge then verifies its txs), long before its wait ends."""
    _, net = home
    net.nonces.clear()
    txs = gossip(net, 2)

    async def scenario(node: Node, sent: list[tuple[bytes, int, Any]]) -> None:
        await node._on_tx_batch(key_of(net, "nbc"), [tx.encode() for tx in txs])
        resumed = asyncio.Event()
        assert node._await_held([txs[1].hash], resumed.set)
        limit = node.config.consensus.timeout_propose_ms * runtime.AWAIT_HELD_FRACTION / 1000
        await asyncio.wait_for(resumed.wait(), limit + 5)
        assert node.attestations.lookup(txs[1].hash) is not None  # still held
        assert txs[1].hash not in node.mempool
        # it waited the tenth (40 ms here), not the propose timeout (400 ms)
        waited = node.metrics.awaited_wait.total
        assert limit <= waited < node.config.consensus.timeout_propose_ms / 1000

    run_node(home, tmp_path, scenario, wait_ms=60_000)


def test_a_compact_proposal_goes_out_behind_the_gossip_of_its_txs(
    home: tuple[Path, Net], tmp_path: Path
) -> None:
    """Reliable frames overtake gossip in a peer's send queue; a compact proposal must
    not, or the peer reads it before the txs it names and asks for the full block."""
    _, net = home
    net.nonces.clear()
    [tx] = gossip(net, 1)

    async def scenario(node: Node, sent: list[tuple[bytes, int, Any]]) -> None:
        broadcasts: list[tuple[int, bool, bool]] = []

        def broadcast(
            kind: int,
            payload: Any,
            exclude: Any = None,
            droppable: bool = False,
            behind_droppable: bool = False,
        ) -> int:
            broadcasts.append((kind, droppable, behind_droppable))
            return 1

        node.p2p.broadcast = broadcast  # type: ignore[method-assign]
        await node.submit_many([tx.encode()])
        assert tx.hash in node.mempool and broadcasts == []  # gossip waits to batch up
        assert node._gossip_timer is not None
        node.engine.flush_gossip()
        assert broadcasts == [(msg.TX_BATCH, True, False)]
        # the flush before a proposal cancels the timer: no second, empty flush
        assert node._gossip_timer is None
        await asyncio.sleep(3 * GOSSIP_FLUSH_S)
        assert broadcasts == [(msg.TX_BATCH, True, False)]
        node.engine._broadcast(msg.COMPACT_PROPOSAL, [])
        node.engine._broadcast(msg.VOTE, [])
        assert broadcasts[1:] == [(msg.COMPACT_PROPOSAL, False, True), (msg.VOTE, False, False)]

    run_node(home, tmp_path, scenario)


def test_a_client_tx_is_queued_for_gossip_before_a_proposal_can_name_it(
    home: tuple[Path, Net], tmp_path: Path
) -> None:
    """A client's batch is admitted a slice at a time, and the loop yields after each: a
    proposal built then names the slice's txs, so the flush before it must send them.
    Queued for gossip only once the whole batch was in, they went out after the
    proposal (the peer fetched the full block)."""
    _, net = home
    net.nonces.clear()
    txs = gossip(net, 20)

    async def scenario(node: Node, sent: list[tuple[bytes, int, Any]]) -> None:
        gossiped: set[bytes] = set()
        unsent: list[int] = []

        def broadcast(kind: int, payload: Any, *args: Any, **kwargs: Any) -> int:
            if kind == msg.TX_BATCH:
                gossiped.update(payload)
            return 1

        node.p2p.broadcast = broadcast  # type: ignore[method-assign]

        async def propose_whenever_txs_are_pending() -> None:
            while True:
                if len(node.mempool):
                    node.engine.flush_gossip()  # as `_send_proposal` does
                    raws = set(node.mempool.all_raw())
                    unsent.append(len(raws - gossiped))
                await asyncio.sleep(0)

        proposer = asyncio.create_task(propose_whenever_txs_are_pending())
        try:
            results = await node.submit_many([tx.encode() for tx in txs])
        finally:
            proposer.cancel()
        assert all("error" not in r for r in results), results
        assert unsent and set(unsent) == {0}, unsent

    run_node(home, tmp_path, scenario)


def test_gossip_goes_in_frames_bounded_by_count_and_bytes() -> None:
    """No gossip frame exceeds the frame limit, however large the txs: 2,000 txs of
    16 KB would be 32 MB against a 16 MB frame."""
    raws = [bytes([i % 256]) * 10 for i in range(2 * GOSSIP_MAX_BATCH + 5)]
    chunks = list(chunk_gossip(raws, 10**9))
    assert [len(c) for c in chunks] == [GOSSIP_MAX_BATCH, GOSSIP_MAX_BATCH, 5]
    assert [raw for c in chunks for raw in c] == raws
    chunks = list(chunk_gossip(raws[:10], 35))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    assert [raw for c in chunks for raw in c] == raws[:10]
    # one tx larger than the budget still goes, alone
    assert list(chunk_gossip([b"a", b"b" * 50, b"c"], 10)) == [[b"a"], [b"b" * 50], [b"c"]]
    assert list(chunk_gossip([], 10)) == []
