"""Every database key in one place.

State keys (prefix `s`) are what the state hash covers; chain keys (prefix `c`) hold
blocks, commits and indexes. Heights and positions are 8-byte / 4-byte big-endian so that
key order is numeric order.
"""

from __future__ import annotations

import struct

STATE_PREFIX = b"s"

ACCOUNT_PREFIX = b"s/a/"
BALANCE_PREFIX = b"s/b/"
BANK_PREFIX = b"s/k/"
ASSET_PREFIX = b"s/t/"
SUPPLY_PREFIX = b"s/u/"
ROLE_PREFIX = b"s/r/"
VALIDATORS_KEY = b"s/v"
PENDING_VALIDATORS_PREFIX = b"s/pv/"
CHAIN_PARAMS_KEY = b"s/p"
PAID_REFERENCE_PREFIX = b"s/ref/"
FX_RATE_PREFIX = b"s/fx/"

GENESIS_HASH_KEY = b"c/genesis"
HEIGHT_KEY = b"c/height"
SCHEMA_VERSION_KEY = b"c/schema"
# The layout of the store's keys and records. Version 2: blocks whose tx root covers the
# signatures. Version 3: payments carry their KHQR code (a transfer has 6 fields, an FX
# transfer 9) and are indexed under the code's md5. A store of another version is refused
# at open (`store_version`).
SCHEMA_VERSION = 3
BLOCK_PREFIX = b"c/b/"
BLOCK_HASH_PREFIX = b"c/h/"
COMMIT_PREFIX = b"c/c/"
TX_INDEX_PREFIX = b"c/tx/"
HISTORY_PREFIX = b"c/ah/"
REJECTED_PREFIX = b"c/rj/"
STATE_HASH_PREFIX = b"c/sh/"
REFERENCE_INDEX_PREFIX = b"c/ref/"


def encode_height(height: int) -> bytes:
    return struct.pack(">Q", height)


def decode_height(raw: bytes) -> int:
    return int(struct.unpack(">Q", raw)[0])


# State.
def make_account_key(account: str) -> bytes:
    return ACCOUNT_PREFIX + account.encode()


def make_balance_key(account: str, asset: str) -> bytes:
    return BALANCE_PREFIX + account.encode() + b"/" + asset.encode()


def make_balance_prefix(account: str) -> bytes:
    return BALANCE_PREFIX + account.encode() + b"/"


def make_bank_key(bank: str) -> bytes:
    return BANK_PREFIX + bank.encode()


def make_asset_key(asset: str) -> bytes:
    return ASSET_PREFIX + asset.encode()


def make_supply_key(asset: str) -> bytes:
    return SUPPLY_PREFIX + asset.encode()


def make_role_key(role: str) -> bytes:
    return ROLE_PREFIX + role.encode()


def make_validators_key() -> bytes:
    return VALIDATORS_KEY


def make_pending_validators_key(height: int) -> bytes:
    """The validator set that takes effect at `height` (written two heights ahead)."""
    return PENDING_VALIDATORS_PREFIX + encode_height(height)


def make_chain_params_key() -> bytes:
    return CHAIN_PARAMS_KEY


def make_paid_reference_key(reference: str) -> bytes:
    """Present once a single-use payment reference (a dynamic KHQR's md5) has paid."""
    return PAID_REFERENCE_PREFIX + reference.encode()


def make_fx_rate_prefix(operator: str = "") -> bytes:
    """All published rates, or (with `operator`) one cross-border operator's."""
    return FX_RATE_PREFIX + (operator.encode() + b"/" if operator else b"")


def make_fx_rate_key(operator: str, base: str, quote: str) -> bytes:
    return make_fx_rate_prefix(operator) + base.encode() + b"/" + quote.encode()


# Chain.
def make_genesis_hash_key() -> bytes:
    return GENESIS_HASH_KEY


def make_height_key() -> bytes:
    return HEIGHT_KEY


def make_schema_version_key() -> bytes:
    return SCHEMA_VERSION_KEY


def make_block_key(height: int) -> bytes:
    return BLOCK_PREFIX + encode_height(height)


def make_block_hash_key(block_hash: bytes) -> bytes:
    return BLOCK_HASH_PREFIX + block_hash


def make_commit_key(height: int) -> bytes:
    return COMMIT_PREFIX + encode_height(height)


def make_state_hash_key(height: int) -> bytes:
    return STATE_HASH_PREFIX + encode_height(height)


def make_tx_index_key(tx_hash: bytes) -> bytes:
    return TX_INDEX_PREFIX + tx_hash


def make_reference_index_prefix(lookup_key: str) -> bytes:
    """Length-prefixed, so one lookup key's entries never mix with a longer key's."""
    raw = lookup_key.encode()
    return REFERENCE_INDEX_PREFIX + bytes([len(raw)]) + raw


def make_reference_index_key(lookup_key: str, height: int, position: int, command: int) -> bytes:
    """One key per payment: its lookup key, then where it sits (chain order)."""
    where = encode_height(height) + struct.pack(">IH", position, command)
    return make_reference_index_prefix(lookup_key) + where


def make_history_prefix(account: str) -> bytes:
    return HISTORY_PREFIX + account.encode() + b"/"


def make_history_key(account: str, height: int, position: int) -> bytes:
    return make_history_prefix(account) + encode_height(height) + struct.pack(">I", position)


# Node-local data (prefix `n`): mempool, rejections, signing state, evidence. Never hashed.
MEMPOOL_PREFIX = b"n/mp/"
NODE_REJECTED_PREFIX = b"n/rj/"
SIGN_STATE_KEY = b"n/sign"
PROPOSED_BLOCK_KEY = b"n/prop"
EVIDENCE_PREFIX = b"n/ev/"
IDEMPOTENCY_PREFIX = b"n/idk/"
IDEMPOTENCY_ORDER_PREFIX = b"n/ido/"
# The Open API sandbox: registrations by email, verification codes and tokens by their
# sha256 (never the secrets themselves), deeplinks and their order (bounded).
OPENAPI_REGISTRATION_PREFIX = b"n/oar/"
OPENAPI_CODE_PREFIX = b"n/oac/"
OPENAPI_TOKEN_PREFIX = b"n/oat/"
OPENAPI_LINK_PREFIX = b"n/oal/"
OPENAPI_LINK_ORDER_PREFIX = b"n/oalo/"


def make_mempool_key(tx_hash: bytes) -> bytes:
    return MEMPOOL_PREFIX + tx_hash


def make_node_rejected_key(tx_hash: bytes) -> bytes:
    return NODE_REJECTED_PREFIX + tx_hash


# The order rejections were recorded in, so the oldest are dropped first (bounded).
NODE_REJECTED_ORDER_PREFIX = b"n/rjo/"
# Rejections by the height at which this node found them (a block's "rejected" list).
NODE_REJECTED_HEIGHT_PREFIX = b"n/rjh/"


def make_node_rejected_height_prefix(height: int) -> bytes:
    return NODE_REJECTED_HEIGHT_PREFIX + encode_height(height)


def make_node_rejected_height_key(height: int, tx_hash: bytes) -> bytes:
    return make_node_rejected_height_prefix(height) + tx_hash


def make_node_rejected_order_key(seq: int) -> bytes:
    return NODE_REJECTED_ORDER_PREFIX + encode_height(seq)


def make_sign_state_key() -> bytes:
    return SIGN_STATE_KEY


def make_proposed_block_key() -> bytes:
    """The last block this validator proposed (re-sent after a restart)."""
    return PROPOSED_BLOCK_KEY


def make_evidence_key(height: int, round_: int, kind: int, validator: bytes) -> bytes:
    """One record per (height, round, message kind, validator): a validator that
    equivocates a thousand times in one step is recorded once. Sorted by height, so
    old records are pruned from the front."""
    return EVIDENCE_PREFIX + encode_height(height) + struct.pack(">IB", round_, kind) + validator


def decode_evidence_height(key: bytes) -> int:
    start = len(EVIDENCE_PREFIX)
    return int.from_bytes(key[start : start + 8], "big")


def make_idempotency_key(scope: str, key: str) -> bytes:
    """A client's Idempotency-Key within `scope` (who pays); the scope is length-prefixed so
    that one scope's keys never mix with a longer scope's."""
    raw = scope.encode()
    return IDEMPOTENCY_PREFIX + bytes([len(raw)]) + raw + key.encode()


def make_idempotency_order_key(seq: int) -> bytes:
    """The `seq`-th idempotency record written: iterating gives oldest first, for eviction."""
    return IDEMPOTENCY_ORDER_PREFIX + encode_height(seq)
