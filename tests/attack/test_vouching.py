"""Shared verification of gossip (node/attest.py), against real node processes.

Validators verify each gossiped batch k times (its origin and the k - 1 after it; k is
the quorum by default), and the others admit it on those k attestations. What must hold:
- on a quiet testnet, validators do vouch for batches and every tx commits;
- a Byzantine validator's attestation of its own forged batch (a mint in the central
  bank's name with a zero signature), however often it sends it, and the attestation of
  a registered bank that is no validator, are not enough: the target verifies the batch
  itself once its wait ends, refuses the mint, and nothing moves anywhere;
- a designated verifier that is down costs the others time, not liveness: they verify
  the batches it would have attested, and every tx commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from consensus.validators import ValidatorSet
from genesis.load import load_genesis_file
from ledger.crypto import PrivateKey
from node import messages as msg
from node.attest import compute_batch_digest, designated_verifiers
from node.keyfile import read_key_file
from tests.attack.harness import dial
from tests.attack.test_attacks import (
    assert_never_commits,
    balances,
    central_bank_key,
    evil_issue,
    zero_signature_variant,
)
from tests.attack.test_follower import BYZANTINE, OBSERVER, counter
from tests.node.netutil import Net, running_testnet, wait_for

pytestmark = pytest.mark.slow
# BYZANTINE (test_follower): a validator whose node key the attacker holds, the node down


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    with running_testnet(tmp_path_factory.mktemp("vouching")) as running:
        yield running


def node_key(net: Net, name: str) -> PrivateKey:
    return read_key_file(net.node_dir(name) / "node_key.json")


def validator_set(net: Net) -> tuple[ValidatorSet, dict[bytes, str]]:
    """The genesis validator set (genesis.load orders it by bank code), and each key's
    node name."""
    genesis = load_genesis_file(net.home / "genesis.json")
    validators = ValidatorSet.of(sorted((b.code, b.node_key) for b in genesis.banks if b.validator))
    names = {node_key(net, name).public_key: name for name in net.validators}
    return validators, names


def test_validators_vouch_for_each_others_batches(net: Net) -> None:
    txs = [net.transfer("aclb", "aba", 1 + i) for i in range(8)]
    for i, tx in enumerate(txs):
        assert net.submit(net.names[i % len(net.names)], tx)[0] == 202
    net.wait_committed("nbc", [tx.hash.hex() for tx in txs])
    net.wait_converged()
    attested = sum(counter(net, name, "bakong_attested_batches_total") for name in net.validators)
    vouched = sum(counter(net, name, "bakong_vouched_batches_total") for name in net.validators)
    assert attested >= 1 and vouched >= 1, (attested, vouched)
    # the observer follows: it neither attests nor waits
    assert counter(net, OBSERVER, "bakong_attested_batches_total") == 0
    assert counter(net, OBSERVER, "bakong_vouched_batches_total") == 0


def test_a_byzantine_validator_cannot_vouch_alone(net: Net) -> None:
    first = net.issue("aba", 1)
    assert net.submit("nbc", first)[0] == 202
    net.wait_committed("nbc", [first.hash.hex()])
    net.wait_converged()
    before = balances(net, "admin@aba")
    validators, names = validator_set(net)
    byzantine = node_key(net, BYZANTINE)
    stranger = node_key(net, OBSERVER)  # a registered bank that is no validator
    net.kill(BYZANTINE)
    net.kill(OBSERVER)
    forged = zero_signature_variant(evil_issue(net, PrivateKey.generate()), central_bank_key(net))
    digest = compute_batch_digest([forged.wire_hash])
    chosen = designated_verifiers(validators, byzantine.public_key, digest, "quorum")
    helpers = {names[key] for key in chosen}
    targets = [n for n in net.validators if n not in helpers and n != BYZANTINE]
    assert helpers and targets
    waited = {name: counter(net, name, "bakong_unvouched_batches_total") for name in targets}
    ignored = {name: counter(net, name, "bakong_ignored_attestations_total") for name in targets}

    async def attack() -> None:
        for name in [*targets, *helpers]:
            port = net.node(name).p2p_port
            async with (
                dial(port, stranger, net.chain_id) as other,
                dial(port, byzantine, net.chain_id) as session,
            ):
                # "I believe the one tx of that batch"
                await other.send(msg.ATTEST, [digest, b"\x01"])  # no validator: not counted
                await session.send(msg.ATTEST, [digest, b"\x01"])  # before the batch
                await session.send(msg.TX_BATCH, [forged.encode()])
                await session.send(msg.ATTEST, [digest, b"\x01"])  # and after: one voucher
                await other.send(msg.ATTEST, [digest, b"\x01"])
                await asyncio.sleep(0.5)

    asyncio.run(attack())
    for name in targets:
        wait_for(
            lambda name=name: (
                counter(net, name, "bakong_unvouched_batches_total") > waited[name]
                and counter(net, name, "bakong_ignored_attestations_total") >= ignored[name] + 2
            ),
            15,
            f"{name} verified the forged batch itself, the stranger's attestations ignored",
        )
    for name in net.validators:
        if name != BYZANTINE:
            status = net.tx_status(name, forged.hash.hex())
            assert status is None or status["status"] != "pending", (name, status)
    net.up()
    assert_never_commits(net, forged, before)


def test_a_silent_verifier_costs_time_not_liveness(net: Net) -> None:
    validators, names = validator_set(net)
    origin = "nbc"
    origin_key = node_key(net, origin).public_key
    chosen = designated_verifiers(validators, origin_key, b"\0" * 32, "quorum")
    silent = names[chosen[0]]  # one of the two that verify nbc's batches after it
    waiters = [n for n in net.validators if n not in (origin, *names_of(chosen, names))]
    assert waiters
    before = {name: counter(net, name, "bakong_unvouched_batches_total") for name in waiters}
    net.kill(silent)
    try:
        txs = [net.transfer("aclb", "aba", 1 + i) for i in range(3)]
        for tx in txs:
            assert net.submit(origin, tx)[0] == 202
        live = [n for n in net.validators if n != silent]
        for name in live:
            net.wait_committed(name, [tx.hash.hex() for tx in txs])
        for name in waiters:
            assert counter(net, name, "bakong_unvouched_batches_total") > before[name]
    finally:
        net.up()
    net.wait_converged()


def names_of(keys: tuple[bytes, ...], names: dict[bytes, str]) -> list[str]:
    return [names[key] for key in keys]
