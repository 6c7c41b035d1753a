"""JSON shapes of ledger objects for the HTTP API: hashes and keys as hex, amounts as
exact decimal strings in the asset's units (never floats)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ledger import chain
from ledger.block import Block, Commit
from ledger.chain import PaymentLocation
from ledger.commands import Command, FxTransfer, Transfer
from ledger.fx import PublishedRate, format_rate
from ledger.ids import format_amount
from ledger.khqr import khqr_md5
from ledger.kv import KeyValueReader
from ledger.schema import ASSET_PREFIX, make_balance_prefix
from ledger.state import Asset, State, decode_balance
from ledger.tx import SignedTx

_COMMAND_NAMES = {
    "RegisterBank": "register_bank",
    "AddValidator": "add_validator",
    "RemoveValidator": "remove_validator",
    "CreateAccount": "create_account",
    "Issue": "issue",
    "Redeem": "redeem",
    "Transfer": "transfer",
    "Freeze": "freeze",
    "Unfreeze": "unfreeze",
    "SetRate": "set_rate",
    "FxTransfer": "fx_transfer",
}


def get_decimals(reader: KeyValueReader) -> dict[str, int]:
    return {
        Asset.decode(raw).code: Asset.decode(raw).decimals
        for _, raw in reader.iterate(ASSET_PREFIX)
    }


def command_to_json(cmd: Command, decimals: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": _COMMAND_NAMES.get(type(cmd).__name__, type(cmd).__name__)}
    for f in fields(cmd):
        value = getattr(cmd, f.name)
        name = f.name.rstrip("_")
        if isinstance(value, bytes):
            value = value.hex()
        elif f.name.endswith("amount"):
            # `amount` is in `asset`, `source_amount` in `source_asset`
            asset = getattr(cmd, f.name.replace("amount", "asset"), "")
            value = format_amount(value, decimals.get(asset, 0))
        out[name] = value
    return out


def tx_to_json(tx: SignedTx, decimals: dict[str, int]) -> dict[str, Any]:
    body = tx.body
    return {
        "hash": tx.hash.hex(),
        "signer": body.signer,
        "nonce": body.nonce,
        "created_at": body.created_at,
        "chain_id": body.chain_id,
        "memo": body.memo,
        "commands": [command_to_json(c, decimals) for c in body.commands],
        "signatures": [{"public_key": s.public_key.hex()} for s in tx.signatures],
    }


def header_to_json(block: Block) -> dict[str, Any]:
    h = block.header
    return {
        "height": h.height,
        "hash": block.hash.hex(),
        "time": h.time_ms,
        "chain_id": h.chain_id,
        "prev_hash": h.prev_hash.hex(),
        "tx_root": h.tx_root.hex(),
        "state_hash": h.state_hash.hex(),
        "proposer": h.proposer,
        "validator_set_hash": h.validator_set_hash.hex(),
        "last_commit_hash": h.last_commit_hash.hex(),
        "txs": len(block.txs),
    }


def commit_to_json(commit: Commit | None, names: dict[bytes, str]) -> dict[str, Any] | None:
    if commit is None:
        return None
    return {
        "height": commit.height,
        "round": commit.round,
        "block_hash": commit.block_hash.hex(),
        "signatures": [
            {
                "validator": names.get(sig.validator, ""),
                "public_key": sig.validator.hex(),
                "signature": sig.signature.hex(),
            }
            for sig in commit.signatures
        ],
    }


def block_to_json(
    block: Block, commit: Commit | None, decimals: dict[str, int], names: dict[bytes, str]
) -> dict[str, Any]:
    out = header_to_json(block)
    out["txs"] = [tx_to_json(tx, decimals) for tx in block.txs]
    out["tx_count"] = len(block.txs)
    out["commit"] = commit_to_json(commit, names)
    return out


def get_balances(reader: KeyValueReader, account: str, decimals: dict[str, int]) -> dict[str, str]:
    """Every asset's balance of `account` as an exact decimal string ("0" when it holds
    none), in asset order."""
    balances = {asset: format_amount(0, d) for asset, d in sorted(decimals.items())}
    prefix = make_balance_prefix(account)
    for key, raw in reader.iterate(prefix):
        asset = key[len(prefix) :].decode()
        balances[asset] = format_amount(decode_balance(raw), decimals.get(asset, 0))
    return balances


def account_to_json(reader: KeyValueReader, account: str) -> dict[str, Any] | None:
    record = State(reader).get_account(account)
    if record is None:
        return None
    return {
        "account": account,
        "balances": get_balances(reader, account, get_decimals(reader)),
        "nonce": record.nonce,
        "frozen": record.frozen,
        "role": record.role,
        "public_key": record.public_key.hex(),
    }


def tx_status_json(reader: KeyValueReader, tx_hash: bytes) -> dict[str, Any] | None:
    found = chain.get_tx_location(reader, tx_hash)
    if found is None:
        return None
    height, position = found
    return {"hash": tx_hash.hex(), "status": "committed", "height": height, "position": position}


def payment_to_json(
    reader: KeyValueReader, location: PaymentLocation, decimals: dict[str, int]
) -> dict[str, Any] | None:
    """One payment found by its reference: what Bakong's check_transaction_by_md5
    answers (hash, from, to, currency, amount, time = block time in ms), and where it is."""
    found = chain.get_tx(reader, location.tx_hash)
    header = chain.get_block_header(reader, location.height)
    if found is None or header is None:
        return None
    tx = found[0]
    cmd = tx.body.commands[location.command]
    if not isinstance(cmd, Transfer | FxTransfer):
        return None
    out = {
        "hash": tx.hash.hex(),
        "from": cmd.from_,
        "to": cmd.to,
        "currency": cmd.asset,
        "amount": format_amount(cmd.amount, decimals.get(cmd.asset, 0)),
        "time": header.time_ms,
        "height": location.height,
        "position": location.position,
        "reference": cmd.reference,
        "khqr_md5": khqr_md5(cmd.khqr) if cmd.khqr else None,
        "khqr": cmd.khqr or None,
        "signer": tx.body.signer,
        "memo": tx.body.memo,
    }
    if isinstance(cmd, FxTransfer):
        source = format_amount(cmd.source_amount, decimals.get(cmd.source_asset, 0))
        out |= {"operator": cmd.operator, "source_currency": cmd.source_asset}
        out["source_amount"] = source
    return out


def rate_to_json(published: PublishedRate, decimals: dict[str, int]) -> dict[str, Any]:
    """The exact ratio of minor units, and `rate` (whole quote units per whole base
    unit, at most 6 decimals) for people."""
    rate = published.rate
    base_decimals = decimals.get(published.base, 0)
    quote_decimals = decimals.get(published.quote, 0)
    return {
        "operator": published.operator,
        "base": published.base,
        "quote": published.quote,
        "numerator": rate.numerator,
        "denominator": rate.denominator,
        "rate": format_rate(rate, base_decimals, quote_decimals),
    }
