"""Payment references: a KHQR code binds the payment that carries it (payee, currency,
amount, expiry), a dynamic code pays once, free references never pose as an md5, and the
chain's index files payments under their code's md5 and their reference."""

from __future__ import annotations

from dataclasses import replace

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
from ledger.commands import MAX_KHQR_BYTES, Command, FxTransfer, Issue, Transfer
from ledger.crypto import PrivateKey, sha256
from ledger.errors import ReferenceMismatch
from ledger.khqr import KHQR, AdditionalData, AlternateLanguage, encode_khqr, khqr_md5
from ledger.references import (
    check_payment_binding,
    get_command_khqr,
    get_command_reference,
    get_lookup_keys,
    is_khqr_md5,
    is_md5_shaped,
)
from ledger.schema import make_paid_reference_key, make_reference_index_prefix
from ledger.store.memory import MemoryStore
from ledger.transition import BlockResult, TxResult
from ledger.tx import SignedTx, TxBody, sign_tx
from tests.ledger.helpers import GENESIS_TIME, Ledger

KEY = PrivateKey.from_seed(bytes(range(32)))
DAY_MS = 86_400_000
# carol@wing's codes: a dynamic one for 15,000 KHR and a static one (any amount)
DYNAMIC = encode_khqr(
    KHQR(
        "carol@wing",
        "Carol Shop",
        "Phnom Penh",
        "KHR",
        amount=15_000,
        created_ms=GENESIS_TIME,
        expires_ms=GENESIS_TIME + DAY_MS,
    )
)
STATIC = encode_khqr(KHQR("carol@wing", "Carol Shop", "Phnom Penh", "KHR"))
MD5 = khqr_md5(DYNAMIC)
STATIC_MD5 = khqr_md5(STATIC)
OTHER_MD5 = "0" * 32


def code(**changes: object) -> str:
    base = KHQR(
        "carol@wing",
        "Carol Shop",
        "Phnom Penh",
        "KHR",
        amount=15_000,
        created_ms=GENESIS_TIME,
        expires_ms=GENESIS_TIME + DAY_MS,
    )
    return encode_khqr(replace(base, **changes))  # type: ignore[arg-type]


# Grammar.
def test_md5_grammar() -> None:
    assert is_khqr_md5(MD5) and not is_khqr_md5(MD5.upper()) and not is_khqr_md5(MD5[:-1])
    for shaped in (MD5, MD5.upper(), MD5 + ":static", MD5 + ":x", OTHER_MD5):
        assert is_md5_shaped(shaped)
    for free in ("", "INV-2026-0001", MD5 + "x", MD5[:-1], "g" * 32, " " + MD5[1:]):
        assert not is_md5_shaped(free)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=64).filter(lambda text: len(text.encode()) <= 64))
def test_free_references_are_what_they_say(reference: str) -> None:
    """A reference the ledger lets through is filed under itself, never under an md5."""
    cmd = Transfer("alice@aclb", "carol@wing", "KHR", 1, reference)
    try:
        check_payment_binding("carol@wing", "KHR", 1, reference, "", GENESIS_TIME)
    except ReferenceMismatch:
        assert is_md5_shaped(reference)
        return
    assert get_lookup_keys(cmd) == ((reference,) if reference else ())


def test_command_fields() -> None:
    both = Transfer("alice@aclb", "carol@wing", "KHR", 15_000, "INV-1", DYNAMIC)
    assert get_command_reference(both) == "INV-1" and get_command_khqr(both) == DYNAMIC
    assert get_lookup_keys(both) == (MD5, "INV-1")
    assert get_lookup_keys(Transfer("alice@aclb", "carol@wing", "KHR", 1)) == ()
    assert get_command_reference(Issue("admin@aba", "KHR", 1)) == ""
    assert get_lookup_keys(Issue("admin@aba", "KHR", 1)) == ()


# Binding: the stateless rules.
def test_binding_basic() -> None:
    paid = check_payment_binding("carol@wing", "KHR", 15_000, "", DYNAMIC, GENESIS_TIME)
    assert paid is not None and paid.md5 == MD5 and paid.is_single_use
    # a static code: any amount, many times
    for amount in (1, 15_000, 999_999):
        static = check_payment_binding("carol@wing", "KHR", amount, "", STATIC, GENESIS_TIME)
        assert static is not None and not static.is_single_use and static.md5 == STATIC_MD5
    # no code, a free reference: nothing to bind
    assert check_payment_binding("carol@wing", "KHR", 1, "INV-1", "", GENESIS_TIME) is None


@pytest.mark.parametrize(
    ("to", "asset", "amount", "reference", "khqr", "why"),
    [
        # the squat: a 1-riel payment of someone's 15,000 KHR code
        ("carol@wing", "KHR", 1, "", DYNAMIC, "asks for 15,000 KHR"),
        ("carol@wing", "KHR", 15_001, "", DYNAMIC, "asks for 15,000 KHR"),
        # paid to someone else than the code's account
        ("dave@wing", "KHR", 15_000, "", DYNAMIC, "pays carol@wing"),
        ("dave@wing", "KHR", 5, "", STATIC, "pays carol@wing"),
        # in another currency
        ("carol@wing", "USD", 15_000, "", DYNAMIC, "asks for KHR"),
        ("carol@wing", "USD", 5, "", STATIC, "asks for KHR"),
        # a code that does not read: tampered (CRC), cut, not a code at all
        ("carol@wing", "KHR", 15_000, "", DYNAMIC.replace("15000", "15001"), "bad_crc"),
        ("carol@wing", "KHR", 15_000, "", DYNAMIC[:-4] + "0000", "bad_crc"),
        ("carol@wing", "KHR", 15_000, "", DYNAMIC[:40], "does not read"),
        ("carol@wing", "KHR", 15_000, "", "hello", "does not read"),
        # an md5 without its code, in any of the old forms
        ("carol@wing", "KHR", 1, MD5, "", "looks like a KHQR md5"),
        ("carol@wing", "KHR", 1, MD5 + ":static", "", "looks like a KHQR md5"),
        ("carol@wing", "KHR", 15_000, MD5.upper(), DYNAMIC, "looks like a KHQR md5"),
    ],
)
def test_invalid_binding(
    to: str, asset: str, amount: int, reference: str, khqr: str, why: str
) -> None:
    with pytest.raises(ReferenceMismatch, match=why) as caught:
        check_payment_binding(to, asset, amount, reference, khqr, GENESIS_TIME)
    assert caught.value.code == "reference_mismatch"


def test_invalid_binding_expired() -> None:
    expires = GENESIS_TIME + DAY_MS
    assert check_payment_binding("carol@wing", "KHR", 15_000, "", DYNAMIC, expires - 1)
    for late in (expires, expires + 1):
        with pytest.raises(ReferenceMismatch, match="expired"):
            check_payment_binding("carol@wing", "KHR", 15_000, "", DYNAMIC, late)
    # without a time (no clock to judge by) only the expiry is left unchecked
    assert check_payment_binding("carol@wing", "KHR", 15_000, "", DYNAMIC, None)


def test_binding_usd_and_merchant_codes() -> None:
    usd = code(currency="USD", amount=1250, account_id="carol@wing")
    assert check_payment_binding("carol@wing", "USD", 1250, "", usd, GENESIS_TIME)
    with pytest.raises(ReferenceMismatch):
        check_payment_binding("carol@wing", "USD", 125, "", usd, GENESIS_TIME)
    merchant = code(merchant_id="M-1", acquiring_bank="Wing Bank")
    assert check_payment_binding("carol@wing", "KHR", 15_000, "", merchant, GENESIS_TIME)


def test_longest_code_fits_a_transfer() -> None:
    """A code as long as the KHQR field rules allow fits the khqr field."""
    longest = code(
        account_id="c" * 27 + "@wing",
        merchant_name="N" * 25,
        merchant_city="C" * 15,
        merchant_id="M" * 30,
        acquiring_bank="B" * 25,
        amount=9_999_999_999_999,
        additional=AdditionalData("1" * 25, "2" * 25, "3" * 25, "7" * 8),
        alternate_language=AlternateLanguage("km", "ក" * 25, "ភ" * 15),
    )
    assert len(longest.encode()) <= MAX_KHQR_BYTES
    Transfer("alice@aclb", "c" * 27 + "@wing", "KHR", 9_999_999_999_999, "", longest)
    with pytest.raises(Exception, match="khqr"):
        Transfer("alice@aclb", "carol@wing", "KHR", 1, "", "x" * (MAX_KHQR_BYTES + 1))


# The chain's index.
def make_tx(nonce: int, *commands: Command) -> SignedTx:
    return sign_tx(TxBody(1, "test", "alice@aba", nonce, 1_000, commands), KEY)


def pay(reference: str = "", khqr: str = "", amount: int = 5) -> Transfer:
    return Transfer("alice@aba", "bob@aba", "KHR", amount, reference, khqr)


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
    first = make_tx(0, pay(khqr=DYNAMIC))
    second = make_tx(1, pay(""), pay("INV-1"), pay("INV-2", STATIC))
    commit_next(store, [first])
    commit_next(store, [make_tx(2, pay("")), second])
    assert get_payments(store, MD5, 10) == [PaymentLocation(first.hash, 1, 0, 0)]
    assert get_payments(store, STATIC_MD5, 10) == [PaymentLocation(second.hash, 2, 1, 2)]
    assert get_payments(store, "INV-1", 10) == [PaymentLocation(second.hash, 2, 1, 1)]
    # a payment with a code and a reference is found by either
    assert get_payments(store, "INV-2", 10) == [PaymentLocation(second.hash, 2, 1, 2)]
    assert get_payments(store, STATIC_MD5, 1) == [PaymentLocation(second.hash, 2, 1, 2)]


def test_index_unknown_reference(store: MemoryStore) -> None:
    commit_next(store, [make_tx(0, pay(khqr=DYNAMIC))])
    assert get_payments(store, OTHER_MD5, 10) == []
    assert get_payments(store, "", 10) == []


def test_index_keys_never_mix(store: MemoryStore) -> None:
    # "INV-1" is a prefix of "INV-12": the length prefix keeps their entries apart
    tx = make_tx(0, pay("INV-12"))
    commit_next(store, [tx])
    assert get_payments(store, "INV-1", 10) == []
    assert get_payments(store, "INV-12", 10) == [PaymentLocation(tx.hash, 1, 0, 0)]


def test_index_lands_with_the_block(store: MemoryStore) -> None:
    commit_next(store, [make_tx(0, pay(khqr=DYNAMIC))])
    keys = [key for key, _ in store.iterate(make_reference_index_prefix(MD5))]
    assert len(keys) == 1 and keys[0].startswith(b"c/ref/")


# In the state transition: binding and the single-use rule.
def khqr_pay(
    ledger: Ledger,
    khqr: str = DYNAMIC,
    payer: str = "alice@aclb",
    amount: int = 15_000,
    reference: str = "",
    to: str = "carol@wing",
) -> str | None:
    cmd = Transfer(payer, to, "KHR", amount, reference, khqr)
    return ledger.apply_tx(ledger.sign(payer, cmd)).code


def test_single_use_basic() -> None:
    ledger = Ledger()
    assert khqr_pay(ledger) is None
    assert ledger.balance("carol@wing", "KHR") == 65_000
    assert ledger.state().is_reference_paid(MD5)
    assert ledger.dump()[make_paid_reference_key(MD5)] == b"\x01"
    assert not ledger.state().is_reference_paid(OTHER_MD5)


def test_invalid_squat_moves_nothing() -> None:
    """The attack of issue 13: a 1-riel payment of carol's 15,000 KHR code. It is
    rejected reference_mismatch, does not use the code, and the real payment goes through."""
    ledger = Ledger()
    before = ledger.dump()
    assert khqr_pay(ledger, amount=1) == "reference_mismatch"
    assert khqr_pay(ledger, reference=MD5, khqr="", amount=1) == "reference_mismatch"
    assert khqr_pay(ledger, to="dave@wing") == "reference_mismatch"
    assert ledger.dump() == before
    assert khqr_pay(ledger) is None


def test_invalid_expired_at_block_time() -> None:
    ledger = Ledger()
    # the block's time, not the payer's clock, decides
    ledger.time_ms = GENESIS_TIME + DAY_MS
    cmd = Transfer("alice@aclb", "carol@wing", "KHR", 15_000, "", DYNAMIC)
    tx = ledger.sign("alice@aclb", cmd, created_at=GENESIS_TIME + DAY_MS)
    assert ledger.apply_tx(tx).code == "reference_mismatch"
    assert not ledger.state().is_reference_paid(MD5)


def test_invalid_already_paid() -> None:
    ledger = Ledger()
    assert khqr_pay(ledger) is None
    before = ledger.dump()
    # neither the same payer nor another one pays the same dynamic code again
    assert khqr_pay(ledger) == "already_paid"
    assert khqr_pay(ledger, payer="admin@aclb") == "already_paid"
    assert ledger.dump() == before


def test_invalid_already_paid_in_the_same_block() -> None:
    ledger = Ledger()
    pay = Transfer("alice@aclb", "carol@wing", "KHR", 15_000, "", DYNAMIC)
    txs = [ledger.sign("alice@aclb", pay, nonce=0), ledger.sign("alice@aclb", pay, nonce=1)]
    assert [r.code for r in ledger.apply(txs).results] == [None, "already_paid"]
    assert ledger.balance("carol@wing", "KHR") == 65_000


def test_rejected_payment_does_not_use_the_code() -> None:
    ledger = Ledger()
    big = code(amount=10**9)
    assert khqr_pay(ledger, khqr=big, amount=10**9) == "insufficient_funds"
    assert not ledger.state().is_reference_paid(khqr_md5(big))
    assert khqr_pay(ledger) is None


@pytest.mark.parametrize(("khqr", "reference"), [(STATIC, ""), ("", "INV-1"), ("", "")])
def test_other_payments_repeat(khqr: str, reference: str) -> None:
    ledger = Ledger()
    assert khqr_pay(ledger, khqr=khqr, reference=reference, amount=7) is None
    assert khqr_pay(ledger, khqr=khqr, reference=reference, amount=9) is None
    assert not any(key.startswith(b"s/ref/") for key in ledger.dump())


def test_fx_transfer_is_bound_too() -> None:
    """An FX payment's code binds the payee's side (to, asset, amount)."""
    cmd = FxTransfer("alice@aclb", "carol@wing", "aclb", "USD", 400, "KHR", 1, "", DYNAMIC)
    with pytest.raises(ReferenceMismatch, match="asks for 15,000 KHR"):
        check_payment_binding(cmd.to, cmd.asset, cmd.amount, cmd.reference, cmd.khqr, None)
