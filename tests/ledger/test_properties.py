"""Hypothesis properties over random sequences of valid and invalid txs, and decoder fuzz.

Invariants after every block: per asset, the sum of balances equals issued - redeemed and
no balance is negative; a rejected tx changes nothing (the block without it gives the same
changes); two stores (memory and LevelDB) fed the same blocks agree on every state hash.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.codec import pack, unpack
from ledger.commands import (
    AddValidator,
    Command,
    CreateAccount,
    Freeze,
    Issue,
    Redeem,
    RegisterBank,
    RemoveValidator,
    Transfer,
    Unfreeze,
    decode_command,
    encode_command,
)
from ledger.constants import MAX_AMOUNT
from ledger.errors import CodecError
from ledger.schema import BALANCE_PREFIX, SUPPLY_PREFIX
from ledger.state import (
    Account,
    Asset,
    Bank,
    ChainParams,
    Role,
    State,
    Supply,
    decode_balance,
    decode_validator_set,
)
from ledger.store.leveldb import LevelDBStore
from ledger.transition import apply_tx, process_block_start
from ledger.tx import SignedTx
from tests.ledger.helpers import Ledger, make_key, make_tx

ACCOUNTS = [
    "admin@nbc",
    "admin@aclb",
    "admin@wing",
    "admin@canadia",
    "alice@aclb",
    "bob@aclb",
    "carol@wing",
    "dave@wing",
    "erin@aclb",
    "fred@wing",
]
BANKS = ["nbc", "aclb", "wing", "canadia", "prince"]
ASSETS = ["KHR", "USD", "EUR"]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

account = st.sampled_from(ACCOUNTS)
asset = st.sampled_from(ASSETS)
amount = st.one_of(st.integers(1, 60_000), st.just(MAX_AMOUNT))
key = st.sampled_from([b"", make_key("k1").public_key, make_key("k2").public_key])
text = st.text(max_size=8)

commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(Transfer, account, account, asset, amount, text),
    st.builds(Transfer, account, account, asset, amount, text),
    st.builds(Issue, account, asset, amount),
    st.builds(Redeem, account, asset, amount),
    st.builds(CreateAccount, account, key, st.sampled_from(["customer", "bank", "nobody"])),
    st.builds(Freeze, account),
    st.builds(Unfreeze, account),
    st.builds(AddValidator, st.sampled_from(BANKS)),
    st.builds(RemoveValidator, st.sampled_from(BANKS)),
    st.builds(
        RegisterBank,
        st.sampled_from(BANKS),
        st.just("New Bank"),
        st.just(make_key("prince-op").public_key),
        st.just(make_key("prince-node").public_key),
    ),
)
KEYED = ["alice@aclb", "bob@aclb", "carol@wing", "erin@aclb", "fred@wing"]
small = st.integers(1, 20_000)
nonce_offset = st.sampled_from([0, 0, 0, 0, 0, 0, 1, -1])


@st.composite
def own_transfer(draw: st.DrawFn) -> tuple[str, list[Command]]:
    signer = draw(st.sampled_from([*KEYED, "admin@aclb", "admin@wing"]))
    return signer, [Transfer(signer, draw(account), draw(asset), draw(small))]


@st.composite
def custodial_transfer(draw: st.DrawFn) -> tuple[str, list[Command]]:
    bank = draw(st.sampled_from(["aclb", "wing"]))
    source = draw(st.sampled_from([a for a in ACCOUNTS if a.endswith("@" + bank)]))
    cmds = draw(st.lists(st.builds(Transfer, st.just(source), account, asset, small), max_size=3))
    return f"admin@{bank}", cmds or [Transfer(source, draw(account), "KHR", 1)]


@st.composite
def central_bank_action(draw: st.DrawFn) -> tuple[str, list[Command]]:
    settlement = st.sampled_from(["admin@aclb", "admin@wing", "admin@canadia", "admin@prince"])
    cmd = draw(
        st.one_of(
            st.builds(Issue, settlement, asset, small),
            st.builds(Redeem, settlement, asset, small),
            st.builds(Freeze, account),
            st.builds(Unfreeze, account),
            commands,
        )
    )
    return "admin@nbc", [cmd]


@st.composite
def open_account(draw: st.DrawFn) -> tuple[str, list[Command]]:
    new = draw(st.sampled_from(["erin@aclb", "fred@wing"]))
    signer = draw(st.sampled_from(["admin@nbc", "admin@aclb", "admin@wing"]))
    return signer, [CreateAccount(new, make_key(new).public_key)]


anything = st.tuples(account, st.lists(commands, min_size=1, max_size=3))
# (signer, commands, nonce offset from the signer's expected next nonce)
tx_specs = st.builds(
    lambda pair, offset: (*pair, offset),
    st.one_of(
        own_transfer(), custodial_transfer(), central_bank_action(), open_account(), anything
    ),
    nonce_offset,
)
blocks = st.lists(st.lists(tx_specs, max_size=8), min_size=1, max_size=4)


def build_block(ledger: Ledger, specs: list[Any]) -> list[SignedTx]:
    """Sign each spec with the nonce its signer will need (plus the spec's offset),
    tracking what earlier txs in the block do on a scratch overlay."""
    scratch, ctx = State(ledger.store), ledger.context()
    process_block_start(scratch, ctx)
    txs = []
    for signer, cmds, offset in specs:
        record = scratch.get_account(signer)
        nonce = max(0, (record.nonce if record else 0) + offset)
        txs.append(make_tx(signer, nonce, *cmds, created_at=ledger.time_ms))
        apply_tx(scratch, ctx, txs[-1])
    return txs


def check_supply(ledger: Ledger) -> None:
    totals: Counter[str] = Counter()
    for key_bytes, value in ledger.store.iterate(BALANCE_PREFIX):
        balance = decode_balance(value)
        assert balance > 0
        totals[key_bytes.rsplit(b"/", 1)[1].decode()] += balance
    for key_bytes, value in ledger.store.iterate(SUPPLY_PREFIX):
        supply = Supply.decode(value)
        assert totals[key_bytes[len(SUPPLY_PREFIX) :].decode()] == supply.issued - supply.redeemed


def check_rejected_change_nothing(ledger: Ledger, txs: list[SignedTx]) -> list[SignedTx]:
    state, ctx = State(ledger.store), ledger.context()
    process_block_start(state, ctx)
    included = []
    for tx in txs:
        before = state.changes()
        result = apply_tx(state, ctx, tx)
        if result.code is None:
            included.append(tx)
        else:
            assert state.changes() == before
    return included


@SETTINGS
@given(blocks)
def test_random_blocks_keep_invariants(block_specs: list[list[Any]]) -> None:
    ledger, replay = Ledger(), Ledger()
    with tempfile.TemporaryDirectory() as tmp:
        on_disk = Ledger(store=LevelDBStore(tmp))
        try:
            for specs in block_specs:
                txs = build_block(ledger, specs)
                included = check_rejected_change_nothing(ledger, txs)
                result = ledger.apply(txs)
                assert [r.tx_hash for r in result.included] == [tx.hash for tx in included]
                assert replay.apply(included).state_hash == result.state_hash
                assert on_disk.apply(txs).state_hash == result.state_hash
                check_supply(ledger)
            assert ledger.dump() == replay.dump() == on_disk.dump()
        finally:
            on_disk.store.close()


@SETTINGS
@given(commands)
def test_command_roundtrip(cmd: Command) -> None:
    assert decode_command(unpack(pack(encode_command(cmd)))) == cmd


@SETTINGS
@given(account, st.lists(commands, min_size=1, max_size=5), st.integers(0, 2**63 - 1), text)
def test_tx_roundtrip(signer: str, cmds: list[Command], nonce: int, memo: str) -> None:
    tx = make_tx(signer, nonce, *cmds, memo=memo)
    data = tx.encode()
    decoded = SignedTx.decode(data)
    assert decoded == tx and decoded.hash == tx.hash and decoded.encode() == data


RECORD_DECODERS: list[Callable[[bytes], object]] = [
    SignedTx.decode,
    Account.decode,
    Bank.decode,
    Asset.decode,
    Supply.decode,
    Role.decode,
    ChainParams.decode,
    decode_validator_set,
    decode_balance,
    lambda data: decode_command(unpack(data)),
]
msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=6),
    max_leaves=20,
)


def assert_only_codec_errors(data: bytes) -> None:
    for decode in RECORD_DECODERS:
        with contextlib.suppress(CodecError):
            decode(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_codec_error(data: bytes) -> None:
    assert_only_codec_errors(data)


@settings(max_examples=300, deadline=None)
@given(msgpack_values)
def test_arbitrary_msgpack_raises_only_codec_error(value: object) -> None:
    assert_only_codec_errors(pack(value))
    with contextlib.suppress(CodecError):
        decode_command(value)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_tx_bytes_raise_only_codec_error(data: st.DataObject) -> None:
    tx = make_tx("alice@aclb", 1, Transfer("alice@aclb", "bob@aclb", "KHR", 5, "r"), memo="m")
    raw = bytearray(tx.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(CodecError):
        SignedTx.decode(bytes(raw))
