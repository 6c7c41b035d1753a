"""Payment references: their grammar, the chain's reference index, and the single-use rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.block import Block, build_block
from ledger.chain import (
    PaymentLocation,
    commit_block,
    get_block_hash,
    get_height,
    get_payments,
    init_chain,
)
from ledger.commands import Command, Issue, Transfer
from ledger.crypto import PrivateKey, sha256
from ledger.khqr import khqr_md5
from ledger.references import (
    get_command_reference,
    get_lookup_key,
    is_khqr_md5,
    is_single_use_reference,
    make_static_reference,
)
from ledger.schema import make_paid_reference_key, make_reference_index_prefix
from ledger.store.memory import MemoryStore
from ledger.transition import BlockResult, TxResult
from ledger.tx import SignedTx, TxBody, sign_tx
from tests.ledger.helpers import Ledger

KEY = PrivateKey.from_seed(bytes(range(32)))
MD5 = khqr_md5(
    "00020101021129190015sokha_chan@aclb5204599953031165802KH5910Sokha Chan6010Phnom Penh6304F4AE"
)
OTHER_MD5 = "0" * 32


# Grammar.
def test_basic() -> None:
    assert is_khqr_md5(MD5) and is_single_use_reference(MD5)
    assert get_lookup_key(MD5) == MD5
    static = make_static_reference(MD5)
    assert static == MD5 + ":static" and not is_single_use_reference(static)
    assert get_lookup_key(static) == MD5
    assert get_lookup_key("INV-2026-0001") == "INV-2026-0001"
    assert not is_single_use_reference("INV-2026-0001") and not is_single_use_reference("")


@pytest.mark.parametrize(
    "text",
    [MD5.upper(), MD5[:-1], MD5 + "0", "g" * 32, " " + MD5[1:], ""],
)
def test_invalid_md5(text: str) -> None:
    assert not is_khqr_md5(text)
    assert not is_single_use_reference(text)


def test_lookup_key_needs_the_separator() -> None:
    # an md5 followed by anything but ':' is a free-form reference of its own
    assert get_lookup_key(MD5 + "x") == MD5 + "x"
    assert get_lookup_key(MD5.upper() + ":static") == MD5.upper() + ":static"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=64))
def test_lookup_key_is_md5_or_the_reference(reference: str) -> None:
    key = get_lookup_key(reference)
    assert key == reference or (is_khqr_md5(key) and reference.startswith(key + ":"))


def test_command_reference() -> None:
    assert get_command_reference(Transfer("a@aba", "b@aba", "KHR", 1, MD5)) == MD5
    assert get_command_reference(Transfer("a@aba", "b@aba", "KHR", 1)) == ""
    assert get_command_reference(Issue("admin@aba", "KHR", 1)) == ""


# The chain's index.
def make_tx(nonce: int, *commands: Command) -> SignedTx:
    return sign_tx(TxBody(1, "test", "alice@aba", nonce, 1_000, commands), KEY)


def pay(reference: str, amount: int = 5) -> Transfer:
    return Transfer("alice@aba", "bob@aba", "KHR", amount, reference)


def commit_next(store: MemoryStore, txs: list[SignedTx]) -> Block:
    height = get_height(store) + 1
    result = BlockResult(
        sha256(b"state %d" % height),
        {},
        tuple(TxResult(tx.hash, None, ("alice@aba", "bob@aba")) for tx in txs),
    )
    block = build_block(
        chain_id="test",
        height=height,
        time_ms=1_000 * height,
        prev_hash=get_block_hash(store, height - 1) or b"",
        state_hash=result.state_hash,
        proposer="aba",
        validator_set_hash=b"v" * 32,
        last_commit_hash=bytes(32),
        txs=txs,
    )
    commit_block(store, block, None, result)
    return block


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    init_chain(store, sha256(b"genesis"), {}, sha256(b"state 0"))
    return store


def test_index_basic(store: MemoryStore) -> None:
    first = make_tx(0, pay(MD5))
    second = make_tx(1, pay(""), pay("INV-1"), pay(make_static_reference(MD5)))
    commit_next(store, [first])
    commit_next(store, [make_tx(2, pay("")), second])
    assert get_payments(store, MD5, 10) == [
        PaymentLocation(first.hash, 1, 0, 0),
        PaymentLocation(second.hash, 2, 1, 2),
    ]
    assert get_payments(store, "INV-1", 10) == [PaymentLocation(second.hash, 2, 1, 1)]
    assert get_payments(store, MD5, 1) == [PaymentLocation(first.hash, 1, 0, 0)]


def test_index_unknown_reference(store: MemoryStore) -> None:
    commit_next(store, [make_tx(0, pay(MD5))])
    assert get_payments(store, OTHER_MD5, 10) == []
    assert get_payments(store, "", 10) == []


def test_index_keys_never_mix(store: MemoryStore) -> None:
    # "INV-1" is a prefix of "INV-12": the length prefix keeps their entries apart
    tx = make_tx(0, pay("INV-12"))
    commit_next(store, [tx])
    assert get_payments(store, "INV-1", 10) == []
    assert get_payments(store, "INV-12", 10) == [PaymentLocation(tx.hash, 1, 0, 0)]


def test_index_lands_with_the_block(store: MemoryStore) -> None:
    commit_next(store, [make_tx(0, pay(MD5))])
    keys = [key for key, _ in store.iterate(make_reference_index_prefix(MD5))]
    assert len(keys) == 1 and keys[0].startswith(b"c/ref/")


# The single-use rule, in the state transition.
def khqr_pay(
    ledger: Ledger, reference: str, payer: str = "alice@aclb", amount: int = 100
) -> str | None:
    cmd = Transfer(payer, "carol@wing", "KHR", amount, reference)
    return ledger.apply_tx(ledger.sign(payer, cmd)).code


def test_single_use_basic() -> None:
    ledger = Ledger()
    assert khqr_pay(ledger, MD5) is None
    assert ledger.state().is_reference_paid(MD5)
    assert ledger.dump()[make_paid_reference_key(MD5)] == b"\x01"
    assert not ledger.state().is_reference_paid(OTHER_MD5)


def test_invalid_already_paid() -> None:
    ledger = Ledger()
    assert khqr_pay(ledger, MD5) is None
    before = ledger.dump()
    # neither the same payer nor another one pays the same dynamic code again
    assert khqr_pay(ledger, MD5) == "already_paid"
    assert khqr_pay(ledger, MD5, payer="admin@aclb", amount=1) == "already_paid"
    assert ledger.dump() == before


def test_invalid_already_paid_in_the_same_block() -> None:
    ledger = Ledger()
    pay = Transfer("alice@aclb", "carol@wing", "KHR", 100, MD5)
    txs = [ledger.sign("alice@aclb", pay, nonce=0), ledger.sign("alice@aclb", pay, nonce=1)]
    assert [r.code for r in ledger.apply(txs).results] == [None, "already_paid"]
    assert ledger.balance("carol@wing", "KHR") == 50_100


def test_rejected_payment_does_not_use_the_code() -> None:
    ledger = Ledger()
    assert khqr_pay(ledger, MD5, amount=10**9) == "insufficient_funds"
    assert not ledger.state().is_reference_paid(MD5)
    assert khqr_pay(ledger, MD5) is None


@pytest.mark.parametrize("reference", ["", make_static_reference(MD5), "INV-1", MD5.upper()])
def test_other_references_repeat(reference: str) -> None:
    ledger = Ledger()
    assert khqr_pay(ledger, reference) is None
    assert khqr_pay(ledger, reference) is None
    assert not any(key.startswith(b"s/ref/") for key in ledger.dump())
