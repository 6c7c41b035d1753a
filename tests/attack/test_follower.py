"""The observer as a follower (`trust_commits`, the default), against real node processes.

A follower executes each block that a commit certificate decides without checking its
txs' signatures again (2f+1 validators signed the certificate, so f+1 honest ones checked
them). What it must still refuse:
- a synced block whose certificate does not verify, even when the block itself executes
  (here a mint that claims the central bank's key with a zero signature, served by a
  registered but Byzantine peer);
- a tx with a bad signature that its own client submits.
And it must follow: same blocks and state as the validators, every block executed on its
certificate, gossiped txs ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from consensus.messages import VoteType, sign_vote
from genesis.load import load_genesis_file
from ledger import chain
from ledger.block import Block, build_block
from ledger.commit import Commit, CommitSig
from ledger.crypto import PrivateKey
from ledger.store.leveldb import LevelDBStore
from ledger.transition import BlockContext, apply_block
from node import messages as msg
from node.config import load_config
from node.keyfile import read_key_file
from tests.attack.harness import dial
from tests.attack.test_attacks import (
    assert_never_commits,
    balances,
    central_bank_key,
    evil_issue,
    receive_until,
    zero_signature_variant,
)
from tests.node.netutil import Net, running_testnet, wait_for

pytestmark = pytest.mark.slow

OBSERVER = "canadia"
BYZANTINE = "wing"  # a validator whose node key the attacker holds (the node itself down)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    with running_testnet(tmp_path_factory.mktemp("follower")) as running:
        yield running


def counter(net: Net, name: str, metric: str, label: str = "") -> float:
    prefix = f"{metric}{{{label}}} " if label else f"{metric} "
    for line in net.metrics(name).splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


def test_the_observer_follows_on_certificates(net: Net) -> None:
    txs = [net.transfer("aclb", "aba", 1 + i) for i in range(5)]
    for i, tx in enumerate(txs):
        assert net.submit(net.validators[i % len(net.validators)], tx)[0] == 202
    own = net.transfer("aba", "aclb", 7)  # the observer's own client
    assert net.submit(OBSERVER, own)[0] == 202
    net.wait_committed(OBSERVER, [tx.hash.hex() for tx in [*txs, own]])
    net.wait_converged()
    assert counter(net, OBSERVER, "bakong_trusted_blocks_total") >= 1
    assert counter(net, OBSERVER, "bakong_ignored_gossip_batches_total") >= 1
    for name in net.validators:
        assert counter(net, name, "bakong_trusted_blocks_total") == 0


def test_a_bad_signature_from_its_own_client_is_refused(net: Net) -> None:
    evil = evil_issue(net, PrivateKey.generate())
    forged = zero_signature_variant(evil, central_bank_key(net))
    for tx in (evil, forged):
        code, body = net.submit(OBSERVER, tx)
        assert code == 400 and body["error"]["code"] == "bad_signature", body


def forged_sync_reply(net: Net, height: int, key: PrivateKey) -> tuple[Block, list[Commit]]:
    """Block `height + 1` on the real tip: a mint claiming the central bank's key with a
    zero signature, with the state hash its execution really gives (computed on the
    stopped Byzantine node's store), and certificates that do not verify: the Byzantine
    validator's one genuine precommit (under the quorum), and every validator listed with
    that one signature copied (bad signatures)."""
    evil = zero_signature_variant(evil_issue(net, PrivateKey.generate()), central_bank_key(net))
    genesis = load_genesis_file(net.home / "genesis.json")
    config = load_config(net.node_dir(BYZANTINE) / "node.toml")
    store = LevelDBStore(config.data_path / "chain.db")
    try:
        assert chain.get_height(store) == height
        tip = chain.get_block_header(store, height)
        prev_state = chain.get_state_hash(store, height)
        last_commit = chain.get_commit(store, height)
        assert tip is not None and prev_state is not None and last_commit is not None
        time_ms = tip.time_ms + 1
        ctx = BlockContext(net.chain_id, height + 1, time_ms)
        result = apply_block(store, prev_state, ctx, [evil])
        assert result.results[0].code is None  # the mint itself would execute
        validators = sorted(b.code for b in genesis.banks if b.validator)
        block = build_block(
            chain_id=net.chain_id,
            height=height + 1,
            time_ms=time_ms,
            prev_hash=chain.get_block_hash(store, height) or b"",
            state_hash=result.state_hash,
            proposer=validators[(height + 1) % len(validators)],
            validator_set_hash=tip.validator_set_hash,
            last_commit_hash=last_commit.hash,
            txs=[evil],
        )
    finally:
        store.close()
    vote = sign_vote(key, net.chain_id, VoteType.PRECOMMIT, height + 1, 0, block.hash)
    own = CommitSig(key.public_key, vote.signature)
    members = [
        read_key_file(net.node_dir(name) / "node_key.json").public_key for name in net.validators
    ]
    copied = tuple(CommitSig(member, vote.signature) for member in members)
    return block, [
        Commit(height + 1, 0, block.hash, (own,)),
        Commit(height + 1, 0, block.hash, copied),
    ]


def test_a_block_whose_commit_does_not_verify_is_refused(net: Net) -> None:
    first = net.issue("aba", 1)
    assert net.submit("nbc", first)[0] == 202
    net.wait_committed(OBSERVER, [first.hash.hex()])
    height = net.wait_converged()["height"]
    before = balances(net, "admin@aba")
    key = read_key_file(net.node_dir(BYZANTINE) / "node_key.json")
    net.kill(BYZANTINE)
    block, certificates = forged_sync_reply(net, height, key)
    invalid_before = counter(net, OBSERVER, "bakong_sync_replies_total", 'verdict="invalid"')

    async def attack() -> None:
        for certificate in certificates:
            async with dial(net.node(OBSERVER).p2p_port, key, net.chain_id) as session:
                # "I am three blocks ahead": the follower asks this peer for blocks
                await session.send(msg.STATUS, [height + 3, b"\x42" * 32])
                start, _ = msg.parse_get_blocks(await receive_until(session, msg.GET_BLOCKS))
                assert start == height + 1
                await session.send(msg.BLOCKS, [[block.encode(), certificate.encode()]])
                await asyncio.sleep(0.3)

    asyncio.run(attack())
    wait_for(
        lambda: (
            counter(net, OBSERVER, "bakong_sync_replies_total", 'verdict="invalid"')
            == invalid_before + 2
        ),
        15,
        "both forged replies refused as invalid",
    )
    status = net.status(OBSERVER)
    assert status is not None and status["height"] == height
    assert net.tx_status(OBSERVER, block.txs[0].hash.hex()) is None
    net.up()
    assert_never_commits(net, block.txs[0], before)
