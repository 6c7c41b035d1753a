"""Block, header and commit containers: round trips, tx root, strict decoding."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.block import (
    EMPTY_ROOT,
    NO_COMMIT_HASH,
    Block,
    BlockHeader,
    Commit,
    CommitSig,
    build_block,
    compute_tx_root,
    compute_validator_set_hash,
    decode_block_header,
    decode_block_tx,
    decode_block_tx_hashes,
)
from ledger.codec import pack, unpack
from ledger.commands import Transfer
from ledger.constants import BLOCK_VERSION
from ledger.crypto import PrivateKey, sha256
from ledger.errors import CodecError
from ledger.tx import SignedTx, TxBody, peek_tx_hash, sign_tx

KEY = PrivateKey.from_seed(bytes(range(32)))


def make_tx(nonce: int) -> SignedTx:
    body = TxBody(
        1, "test", "alice@aba", nonce, 1_000, (Transfer("alice@aba", "bob@aba", "KHR", 5),)
    )
    return sign_tx(body, KEY)


def make_block(n_txs: int = 3, **overrides: object) -> Block:
    fields: dict[str, object] = {
        "chain_id": "test",
        "height": 7,
        "time_ms": 123_456,
        "prev_hash": b"p" * 32,
        "state_hash": b"s" * 32,
        "proposer": "aba",
        "validator_set_hash": b"v" * 32,
        "last_commit_hash": NO_COMMIT_HASH,
        "txs": [make_tx(i) for i in range(n_txs)],
    }
    fields.update(overrides)
    return build_block(**fields)  # type: ignore[arg-type]


def make_commit() -> Commit:
    sigs = (CommitSig(b"a" * 32, b"x" * 64), CommitSig(b"b" * 32, b"y" * 64))
    return Commit(height=7, round=2, block_hash=b"h" * 32, signatures=sigs)


def reencode(data: bytes, edit: object) -> bytes:
    """Decode an encoding to its msgpack tree, apply `edit` to it, and re-encode."""
    tree = unpack(data)
    edit(tree)  # type: ignore[operator]
    return pack(tree)


def test_basic() -> None:
    block = make_block()
    data = block.encode()
    decoded = Block.decode(data)
    assert decoded == block
    assert decoded.hash == block.hash == sha256(block.header.encode())
    assert decoded.encode() == data
    assert [tx.hash for tx in decoded.txs] == [tx.hash for tx in block.txs]


def test_decoded_block_reuses_tx_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_block().encode()
    decoded = Block.decode(data)

    def no_reencoding(self: SignedTx) -> bytes:
        raise AssertionError("a decoded block re-encoded a tx")

    monkeypatch.setattr(SignedTx, "encode", no_reencoding)
    assert decoded.encode() == data


def test_held_txs_are_not_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    block = make_block(4)
    data = block.encode()
    copies = {raw: tx for raw, tx in zip(block.tx_bytes, block.txs, strict=True)}
    asked: list[bytes] = []

    def held(raw: bytes) -> SignedTx | None:
        asked.append(raw)
        return copies.get(raw) if raw != block.tx_bytes[2] else None  # one not held

    real_decode = SignedTx.decode
    decoded_here: list[bytes] = []

    def counting_decode(raw: bytes) -> SignedTx:
        decoded_here.append(raw)
        return real_decode(raw)

    monkeypatch.setattr(SignedTx, "decode", staticmethod(counting_decode))
    decoded = Block.decode(data, held)
    assert decoded == block and decoded.encode() == data
    assert asked == list(block.tx_bytes)
    assert decoded_here == [block.tx_bytes[2]]  # only the one not held
    assert all(decoded.txs[i] is block.txs[i] for i in (0, 1, 3))


def test_a_held_copy_of_other_bytes_is_not_taken() -> None:
    # a `held` that returns another signed variant of a body (same tx id, other bytes)
    # cannot slip it into the block: the bytes are decoded instead
    block = make_block()
    other_key = PrivateKey.from_seed(bytes(range(1, 33)))
    variant = sign_tx(block.txs[1].body, other_key)
    decoded = Block.decode(block.encode(), lambda raw: variant)
    assert decoded == block and decoded.txs[1] != variant
    assert decoded.txs[1].wire_hash == block.txs[1].wire_hash


def test_block_tx_hashes_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    block = make_block(5)
    data = block.encode()

    def no_decoding(raw: bytes) -> SignedTx:
        raise AssertionError("a tx was decoded")

    monkeypatch.setattr(SignedTx, "decode", staticmethod(no_decoding))
    assert decode_block_tx_hashes(data) == [tx.hash for tx in block.txs]
    assert decode_block_tx_hashes(make_block(0).encode()) == []


def test_peek_tx_hash() -> None:
    tx = make_tx(3)
    assert peek_tx_hash(tx.encode()) == tx.hash
    assert peek_tx_hash(b"\xc1") is None  # not msgpack
    assert peek_tx_hash(pack([1, 2, 3])) is None  # no body bytes
    assert peek_tx_hash(pack([1, b"body"])) is None  # not three fields


def test_empty_block() -> None:
    block = make_block(0)
    assert block.header.tx_root == EMPTY_ROOT == sha256(b"")
    assert Block.decode(block.encode()) == block


def test_header_hash_covers_every_field() -> None:
    header = make_block().header
    changes = {
        "chain_id": "other",
        "height": 8,
        "time_ms": 1,
        "prev_hash": b"q" * 32,
        "tx_root": b"t" * 32,
        "state_hash": b"z" * 32,
        "proposer": "acleda",
        "validator_set_hash": b"w" * 32,
        "last_commit_hash": b"c" * 32,
    }
    for name, value in changes.items():
        assert dataclasses.replace(header, **{name: value}).hash != header.hash, name
    assert BlockHeader.decode(header.encode()) == header


def test_decode_block_parts() -> None:
    block = make_block(4)
    data = block.encode()
    assert decode_block_header(data) == block.header
    assert decode_block_tx(data, 2) == block.txs[2]
    assert decode_block_tx(data, 4) is None


def test_tx_root_shape() -> None:
    hashes = [sha256(bytes([i])) for i in range(3)]
    leaves = [sha256(b"\x00" + h) for h in hashes]
    expected = sha256(b"\x01" + sha256(b"\x01" + leaves[0] + leaves[1]) + leaves[2])
    assert compute_tx_root(hashes) == expected
    assert compute_tx_root(hashes[:1]) == leaves[0]


@settings(max_examples=200, deadline=None)
@given(
    a=st.lists(st.binary(min_size=32, max_size=32), max_size=9),
    b=st.lists(st.binary(min_size=32, max_size=32), max_size=9),
)
def test_tx_root_distinguishes_lists(a: list[bytes], b: list[bytes]) -> None:
    assert (compute_tx_root(a) == compute_tx_root(b)) == (a == b)


def test_tx_root_duplicated_tail_differs() -> None:
    hashes = [sha256(bytes([i])) for i in range(3)]
    assert compute_tx_root(hashes) != compute_tx_root([*hashes, hashes[-1]])


def test_tx_root_covers_signatures() -> None:
    # same bodies, one signature differs: another root, another header, another block
    block = make_block()
    other_key = PrivateKey.from_seed(bytes(range(1, 33)))
    resigned = (block.txs[0], sign_tx(block.txs[1].body, other_key), block.txs[2])
    assert [tx.hash for tx in resigned] == [tx.hash for tx in block.txs]
    other = make_block(txs=list(resigned))
    assert other.header.tx_root != block.header.tx_root
    assert other.hash != block.hash
    assert block.header.tx_root == compute_tx_root([tx.wire_hash for tx in block.txs])
    # a block whose header names one variant cannot carry the other
    swapped = Block(block.header, resigned)
    with pytest.raises(CodecError) as info:
        Block.decode(swapped.encode())
    assert info.value.code == "bad_tx_root"


def test_invalid_tx_root() -> None:
    block = make_block()
    forged = Block(dataclasses.replace(block.header, tx_root=b"t" * 32), block.txs)
    with pytest.raises(CodecError) as info:
        Block.decode(forged.encode())
    assert info.value.code == "bad_tx_root"


def test_invalid_tx_order() -> None:
    block = make_block()
    swapped = Block(block.header, (block.txs[1], block.txs[0], block.txs[2]))
    with pytest.raises(CodecError):
        Block.decode(swapped.encode())


def test_invalid_proposer() -> None:
    data = make_block().encode()
    with pytest.raises(CodecError) as info:
        Block.decode(reencode(data, lambda t: t[0].__setitem__(7, "Not A Bank")))
    assert info.value.code == "invalid_id"


def test_invalid_header_version() -> None:
    data = make_block().encode()
    # version 1 (a tx root over body hashes) included: an old block is refused, not misread
    for version in (BLOCK_VERSION - 1, BLOCK_VERSION + 1):
        with pytest.raises(CodecError) as info:
            Block.decode(reencode(data, lambda t, v=version: t[0].__setitem__(0, v)))
        assert info.value.code == "unknown_version"


def test_invalid_height_zero() -> None:
    data = make_block().encode()
    with pytest.raises(CodecError):
        Block.decode(reencode(data, lambda t: t[0].__setitem__(2, 0)))


def test_invalid_hash_size() -> None:
    data = make_block().encode()
    with pytest.raises(CodecError) as info:
        Block.decode(reencode(data, lambda t: t[0].__setitem__(4, b"short")))
    assert info.value.code == "wrong_length"


def test_invalid_trailing_bytes() -> None:
    with pytest.raises(CodecError):
        Block.decode(make_block().encode() + b"\x00")
    with pytest.raises(CodecError):
        Commit.decode(make_commit().encode() + b"\x00")


def test_invalid_tx_bytes_in_block() -> None:
    data = make_block().encode()
    with pytest.raises(CodecError):
        Block.decode(reencode(data, lambda t: t[1].__setitem__(0, b"junk")))


def test_commit_basic() -> None:
    commit = make_commit()
    data = commit.encode()
    assert Commit.decode(data) == commit
    assert commit.hash == sha256(data)
    assert dataclasses.replace(commit, round=3).hash != commit.hash


def test_invalid_commit_signature_size() -> None:
    data = make_commit().encode()
    with pytest.raises(CodecError) as info:
        Commit.decode(reencode(data, lambda t: t[4][0].__setitem__(1, b"x" * 63)))
    assert info.value.code == "wrong_length"


def test_invalid_commit_version() -> None:
    data = make_commit().encode()
    with pytest.raises(CodecError) as info:
        Commit.decode(reencode(data, lambda t: t.__setitem__(0, 9)))
    assert info.value.code == "unknown_version"


def test_validator_set_hash_is_ordered() -> None:
    a, b = ("aba", b"a" * 32), ("acleda", b"b" * 32)
    assert compute_validator_set_hash([a, b]) != compute_validator_set_hash([b, a])
    assert compute_validator_set_hash([a, b]) == compute_validator_set_hash((a, b))
    assert compute_validator_set_hash([a]) != compute_validator_set_hash([a, b])


DECODERS = [Block.decode, BlockHeader.decode, Commit.decode, decode_block_header]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_codec_error(data: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(CodecError):
            decode(data)


VALID = [make_block(2).encode(), make_block(2).header.encode(), make_commit().encode()]


@settings(max_examples=300, deadline=None)
@given(which=st.integers(0, 2), index=st.integers(0, 10_000), value=st.integers(0, 255))
def test_mutated_encodings_raise_only_codec_error(which: int, index: int, value: int) -> None:
    data = bytearray(VALID[which])
    data[index % len(data)] = value
    for decode in DECODERS:
        with contextlib.suppress(CodecError):
            decode(bytes(data))
