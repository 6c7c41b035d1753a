"""The attacks of issue 10, mounted against real node processes on 127.0.0.1.

Each test plays the attacker with tests/attack/harness.py and checks, on every node, that
the attack changed nothing: no session for an impersonator, no money nobody signed for,
no memory handed to strangers, and a restarted node still catches up.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consensus.messages import sign_proposal
from genesis.load import load_genesis_file
from ledger.block import Block, Commit, build_block
from ledger.codec import pack
from ledger.commands import Issue
from ledger.crypto import PrivateKey
from ledger.tx import SignedTx, TxBody, TxSignature, sign_tx
from node import messages as msg
from node.keyfile import read_key_file
from tests.attack.harness import (
    ActiveRelay,
    RawSession,
    dial,
    flood_unauthenticated,
    old_protocol_hello,
)
from tests.node.netutil import Net, http, running_testnet, wait_for

pytestmark = pytest.mark.slow

OBSERVER = "canadia"
MINT = 99_000_000_000  # 990,000,000.00 USD


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    with running_testnet(tmp_path_factory.mktemp("attacks")) as running:
        yield running


def rss_kb(net: Net, name: str) -> int:
    pid = net.pid(name)
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert match
    return int(match.group(1))


def metric(net: Net, name: str, kind: str) -> float:
    """A `bakong_p2p_events_total{kind=...}` value (0 when absent)."""
    for line in net.metrics(name).splitlines():
        if f'kind="{kind}"' in line:
            return float(line.split()[-1])
    return 0.0


def dropped_proposals(net: Net, name: str, reason: str) -> float:
    prefix = f'bakong_dropped_proposals_total{{reason="{reason}"}} '
    for line in net.metrics(name).splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


def balances(net: Net, account: str) -> dict[str, dict[str, str]]:
    out = {}
    for name in net.names:
        code, body = http(f"{net.url(name)}/v1/accounts/{account}")
        assert code == 200, body
        out[name] = body["balances"]
    return out


def evil_issue(net: Net, signer_key: PrivateKey) -> SignedTx:
    """The central bank's Issue of 990,000,000 USD to aba, with its next nonce, signed by
    `signer_key` (anything but the central bank's key)."""
    code, account = http(f"{net.url('nbc')}/v1/accounts/admin@nbc")
    assert code == 200
    body = TxBody(
        1,
        net.chain_id,
        "admin@nbc",
        account["nonce"],
        int(time.time() * 1000),
        (Issue("admin@aba", "USD", MINT),),
        "",
    )
    return sign_tx(body, signer_key)


def zero_signature_variant(tx: SignedTx, public_key: bytes) -> SignedTx:
    """The same body claiming `public_key`, with 64 zero bytes as its signature."""
    return SignedTx(tx.body, (TxSignature(public_key, bytes(64)),))


def central_bank_key(net: Net) -> bytes:
    return net.operator_key("nbc").public_key


async def receive_until(session: RawSession, kind: int, timeout: float = 15.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            msg_type, payload = await session.receive()
            if msg_type == kind:
                return payload


async def junk_proposal(net: Net, session: RawSession, key: PrivateKey, evil: SignedTx) -> None:
    """A proposal for the next height that carries `evil`, built on the real tip (so that
    every header check a node makes before looking at txs passes), signed by `key`,
    which is not the round's proposer."""
    height = net.status("wing")["height"]
    await session.send(msg.GET_BLOCKS, [height, 1])
    [[raw_block, raw_commit]] = await receive_until(session, msg.BLOCKS)
    tip = Block.decode(raw_block)
    commit = Commit.decode(raw_commit)
    genesis = load_genesis_file(net.home / "genesis.json")
    validators = sorted(b.code for b in genesis.banks if b.validator)
    block = build_block(
        chain_id=net.chain_id,
        height=height + 1,
        time_ms=max(int(time.time() * 1000), tip.header.time_ms),
        prev_hash=tip.hash,
        state_hash=b"\x11" * 32,
        proposer=validators[(height + 1) % len(validators)],
        validator_set_hash=tip.header.validator_set_hash,
        last_commit_hash=commit.hash,
        txs=[evil],
    )
    proposal = sign_proposal(key, net.chain_id, height + 1, 0, block.hash, -1)
    await session.send(msg.PROPOSAL, [proposal.encode(), block.encode(), raw_commit])


def borrowed_observer_key(net: Net) -> PrivateKey:
    """A Byzantine registered bank: the observer's node key, the observer itself down."""
    key = read_key_file(net.node_dir(OBSERVER) / "node_key.json")
    net.kill(OBSERVER)
    return key


def assert_never_commits(net: Net, tx: SignedTx, before: dict[str, Any]) -> None:
    """Drive the chain on with an honest tx; `tx` is not in it and no balance moved."""
    honest = net.transfer("aclb", "wing", 1)
    assert net.submit("nbc", honest)[0] == 202
    net.wait_committed("nbc", [honest.hash.hex()])
    net.wait_converged()
    for name in net.names:
        status = net.tx_status(name, tx.hash.hex())
        assert status is None or status["status"] != "committed", (name, status)
    after = {name: value for name, value in balances(net, "admin@aba").items()}
    assert after == before


def test_unauthenticated_flood_leaves_memory_alone(net: Net) -> None:
    """30 keyless connections each announcing a 16 MiB first frame and pushing it."""
    port = net.node("nbc").p2p_port
    start = rss_kb(net, "nbc")

    async def flood() -> None:
        writers = await flood_unauthenticated(port, 30, 16 << 20)
        try:
            peak = max(rss_kb(net, "nbc") for _ in range(5))
            assert peak - start < 50 * 1024, (start, peak)
        finally:
            for writer in writers:
                writer.transport.abort()

    asyncio.run(flood())
    assert rss_kb(net, "nbc") - start < 50 * 1024
    refused = metric(net, "nbc", "refused_malformed_hello")
    refused += metric(net, "nbc", "refused_too_many_handshakes")
    assert refused >= 30
    net.wait_converged()


def test_old_protocol_node_is_refused_with_a_log_line(net: Net) -> None:
    port = net.node("aba").p2p_port
    key = PrivateKey.generate()

    async def old_node() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(old_protocol_hello(net.chain_id, key, 26656))
            await writer.drain()
            async with asyncio.timeout(10):
                return await reader.read()  # our hello, then the hang-up
        finally:
            writer.transport.abort()

    assert asyncio.run(old_node())
    log = (net.node_dir("aba") / "node.log").read_text()
    assert re.search(r"refused .*wrong_version: peer speaks P2P protocol 1", log)
    assert net.status("aba") is not None
    net.wait_converged()


def test_poisoned_cache_then_zero_signature_never_commits(net: Net) -> None:
    first = net.issue("aba", 1)  # a tip block to build the junk proposal on
    assert net.submit("nbc", first)[0] == 202
    net.wait_committed("wing", [first.hash.hex()])
    before = balances(net, "admin@aba")
    key = borrowed_observer_key(net)
    evil = evil_issue(net, PrivateKey.generate())
    forged = zero_signature_variant(evil, central_bank_key(net))
    assert forged.hash == evil.hash

    async def attack() -> None:
        for name in net.validators:
            async with dial(net.node(name).p2p_port, key, net.chain_id) as session:
                await junk_proposal(net, session, key, evil)
                # The same body, claiming the central bank's key, over P2P gossip too.
                await session.send(msg.TX_BATCH, [forged.encode()])
                await asyncio.sleep(0.3)

    asyncio.run(attack())
    for name in net.validators:
        # Each junk proposal was dropped before its block ran (its signer is no proposer).
        wait_for(
            lambda name=name: dropped_proposals(net, name, "not_proposer") == 1,
            10,
            f"the junk proposal dropped on {name}",
        )
        code, body = net.submit(name, forged)
        assert code == 400 and body["error"]["code"] == "bad_signature", (name, body)
    net.up()
    assert_never_commits(net, forged, before)


def test_relayed_handshake_is_never_accepted_and_keyless_mint_fails(net: Net) -> None:
    """The keyless attacker: impersonate the observer by relaying its handshake, then
    try the mint with nothing but public data."""
    before = balances(net, "admin@aba")
    target = "wing"
    net.kill(OBSERVER)
    config_path = net.node_dir(OBSERVER) / "node.toml"
    config = config_path.read_text()

    async def attack() -> ActiveRelay:
        relay = ActiveRelay(net.node(target).p2p_port, net.chain_id)
        relay_port = await relay.start()
        try:
            # The observer's peer list now also names the relay (as a DNS or routing
            # attack would make it dial the attacker).
            config_path.write_text(
                re.sub(r"peers = \[", f'peers = ["127.0.0.1:{relay_port}", ', config, count=1)
            )
            await asyncio.to_thread(net.up)
            async with asyncio.timeout(30):
                while len(relay.target_outcomes) < 2:
                    await asyncio.sleep(0.05)
        finally:
            await relay.stop()
        return relay

    try:
        relay = asyncio.run(attack())
    finally:
        config_path.write_text(config)
    assert relay.victim_auths >= 2
    assert relay.target_outcomes and set(relay.target_outcomes) == {"refused"}
    assert metric(net, target, "refused_bad_signature") >= 2
    # An unregistered key gets no session either.
    stranger = PrivateKey.generate()

    async def keyless() -> bool:
        try:
            async with dial(net.node(target).p2p_port, stranger, net.chain_id) as session:
                return await session.closed_by_peer()
        except Exception:  # refused during the handshake: what we want
            return True

    assert asyncio.run(keyless())
    wait_for(lambda: metric(net, target, "refused_not_admitted") >= 1, 10, "refusal counted")
    # With no key at all, the mint is a zero signature in the central bank's name.
    forged = zero_signature_variant(evil_issue(net, PrivateKey.generate()), central_bank_key(net))
    for name in net.names:
        code, body = net.submit(name, forged)
        assert code == 400 and body["error"]["code"] == "bad_signature", (name, body)
    assert_never_commits(net, forged, before)
    net.kill(OBSERVER)  # back to its own peer list
    net.up()
    net.wait_converged()


def test_restarted_node_catches_up_past_a_block_with_many_txs(net: Net) -> None:
    net.kill(OBSERVER)
    # 1,500 txs from three signers (each within the mempool's nonce window).
    pairs = [("aclb", "aba"), ("aba", "wing"), ("wing", "aclb")]
    txs = [net.transfer(*pairs[i % 3], 1) for i in range(1500)]
    body = pack([tx.encode() for tx in txs])
    code, answer = http(
        net.url("nbc") + "/v1/transactions/batch", body, "application/msgpack", timeout=60
    )
    assert code == 200, answer
    assert all("error" not in item for item in answer["results"]), answer
    net.wait_committed("nbc", [tx.hash.hex() for tx in txs[-3:]], timeout=90)
    code, blocks = http(net.url("nbc") + "/v1/blocks?limit=20")
    assert code == 200
    assert max(b["txs"] for b in blocks["blocks"]) >= 100, blocks
    # The observer restarts with an empty signature cache: sync verifies every tx.
    net.up()
    net.wait_converged(timeout=120)
    status = net.tx_status(OBSERVER, txs[-1].hash.hex())
    assert status is not None and status["status"] == "committed"
