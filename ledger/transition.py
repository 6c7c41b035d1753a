"""The state transition: `process_*` per command, `apply_tx` per tx, `apply_block` per block.

Written as an executable spec: each `process_*` runs its checks first (one comment each,
raising a `LedgerError` with a stable code) and mutates last. `apply_tx` runs a tx on a
journaled overlay and rolls it back on the first failure, so a rejected tx changes nothing.
Signatures are verified before this module (`ledger.tx.is_signature_valid`, cached by
wire hash); here the state decides, including which keys may sign for the signer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import NamedTuple

from ledger.block import BlockHeader, compute_validator_set_hash
from ledger.codec import pack
from ledger.commands import (
    AddValidator,
    Command,
    CreateAccount,
    Freeze,
    FxTransfer,
    Issue,
    Redeem,
    RegisterBank,
    RemoveValidator,
    SetRate,
    Transfer,
    Unfreeze,
    get_command_accounts,
)
from ledger.constants import MAX_AMOUNT
from ledger.crypto import sha256
from ledger.errors import (
    AccountExists,
    AccountFrozen,
    AlreadyPaid,
    BadNonce,
    BankExists,
    BlockError,
    Expired,
    FutureTx,
    InsufficientFunds,
    InsufficientLiquidity,
    InvalidCommand,
    LedgerError,
    Overflow,
    PermissionDenied,
    RateChanged,
    StoreError,
    UnknownAccount,
    UnknownAsset,
    UnknownBank,
    UnknownRate,
    ValidatorError,
    WrongChain,
)
from ledger.fx import Rate, compute_source_amount
from ledger.ids import (
    bank_of,
    central_bank_operator,
    format_amount_grouped,
    format_time_ms,
    is_operator,
    operator_of,
)
from ledger.kv import KeyValueReader
from ledger.permissions import BANK_ROLE, get_role_permissions, is_permitted
from ledger.references import PaidCode, check_payment_binding
from ledger.state import MAX_VALIDATORS, Account, Bank, State, Supply, ValidatorList
from ledger.tx import SignedTx, check_signer_keys

VALIDATOR_CHANGE_DELAY = 2
"""A validator change committed in block h takes effect at height h + 2."""


@dataclass(frozen=True, slots=True)
class BlockContext:
    chain_id: str
    height: int
    time_ms: int


class TxResult(NamedTuple):
    """`code` is None when applied, else the rejection's stable code, and `message` says
    what failed, naming the culprit (`sokha@aba holds 1,000 KHR, needs 100,000 KHR`).
    `accounts` lists every account the tx names (signer included), sorted, for the
    account-history index. (A NamedTuple, one per tx: half the cost of a dataclass.)"""

    tx_hash: bytes
    code: str | None
    accounts: tuple[str, ...]
    message: str = ""


@dataclass(frozen=True, slots=True)
class BlockResult:
    state_hash: bytes
    changes: dict[bytes, bytes | None]
    results: tuple[TxResult, ...]

    @property
    def included(self) -> tuple[TxResult, ...]:
        """Results of the txs that applied (a proposer keeps exactly these txs)."""
        return tuple(r for r in self.results if r.code is None)


def compute_state_hash(prev_state_hash: bytes, changes: Mapping[bytes, bytes | None]) -> bytes:
    """Fold one block's sorted state changes into the previous state hash."""
    pairs = sorted(changes.items(), key=itemgetter(0))
    return sha256(prev_state_hash + sha256(pack(pairs)))


def _get_live_account(state: State, account: str) -> Account:
    """An existing, unfrozen account (frozen accounts neither send nor receive)."""
    record = state.get_account(account)
    if record is None:
        raise UnknownAccount(f"no account {account}")
    if record.frozen:
        raise AccountFrozen(f"account {account} is frozen")
    return record


def _money(state: State, asset: str, amount: int) -> str:
    """An amount for a rejection's message: `1,000 KHR`, `12.50 USD`."""
    record = state.get_asset(asset)
    return f"{format_amount_grouped(amount, record.decimals if record else 0)} {asset}"


def _short_of(state: State, account: str, asset: str, balance: int, needed: int) -> str:
    return f"{account} holds {_money(state, asset, balance)}, needs {_money(state, asset, needed)}"


def _check_asset(state: State, asset: str) -> None:
    if state.get_asset(asset) is None:
        raise UnknownAsset(f"no asset {asset}")


def _check_unpaid(state: State, paid: PaidCode | None) -> None:
    # A dynamic KHQR code pays once.
    if paid is not None and paid.is_single_use and state.is_reference_paid(paid.md5):
        raise AlreadyPaid(f"the KHQR code {paid.md5} is already paid")


def _mark_paid(state: State, paid: PaidCode | None) -> None:
    if paid is not None and paid.is_single_use:
        state.set_reference_paid(paid.md5)


def process_transfer(state: State, ctx: BlockContext, signer: str, cmd: Transfer) -> None:
    # Sender and receiver differ.
    if cmd.from_ == cmd.to:
        raise InvalidCommand(f"a transfer from {cmd.from_} to itself")
    # Both accounts exist and neither is frozen.
    _get_live_account(state, cmd.from_)
    _get_live_account(state, cmd.to)
    # The asset exists.
    _check_asset(state, cmd.asset)
    # The sender has the funds.
    sender_balance = state.get_balance(cmd.from_, cmd.asset)
    if sender_balance < cmd.amount:
        raise InsufficientFunds(_short_of(state, cmd.from_, cmd.asset, sender_balance, cmd.amount))
    # The receiver's balance stays within 2**63-1.
    receiver_balance = state.get_balance(cmd.to, cmd.asset)
    if receiver_balance + cmd.amount > MAX_AMOUNT:
        raise Overflow(f"{cmd.to} balance would overflow")
    # A KHQR code it carries binds it (payee, asset, amount, not expired) ...
    paid = check_payment_binding(
        cmd.to, cmd.asset, cmd.amount, cmd.reference, cmd.khqr, ctx.time_ms
    )
    # ... and a dynamic code pays once.
    _check_unpaid(state, paid)
    state.set_balance(cmd.from_, cmd.asset, sender_balance - cmd.amount)
    state.set_balance(cmd.to, cmd.asset, receiver_balance + cmd.amount)
    _mark_paid(state, paid)


def process_set_rate(state: State, signer: str, cmd: SetRate) -> None:
    # The operator is a registered bank.
    if state.get_bank(cmd.operator) is None:
        raise UnknownBank(f"no bank {cmd.operator}")
    # Both assets exist.
    _check_asset(state, cmd.base)
    _check_asset(state, cmd.quote)
    state.set_rate(cmd.operator, cmd.base, cmd.quote, Rate(cmd.numerator, cmd.denominator))


def _get_fx_cost(state: State, cmd: FxTransfer) -> int:
    """The source amount the operator's published rate asks for `cmd.amount`."""
    rate = state.get_rate(cmd.operator, cmd.source_asset, cmd.asset)
    # The central bank published a rate for this operator and pair.
    if rate is None:
        raise UnknownRate(f"{cmd.operator} has no rate {cmd.source_asset}->{cmd.asset}")
    cost = compute_source_amount(cmd.amount, rate)
    # The payer signed exactly that price.
    if cost != cmd.source_amount:
        asked = f"{cost} {cmd.source_asset}"
        raise RateChanged(f"the rate asks {asked}, the tx pays {cmd.source_amount}")
    return cost


def process_fx_transfer(state: State, ctx: BlockContext, signer: str, cmd: FxTransfer) -> None:
    """Payer -> operator in the source asset, operator -> payee in the target asset;
    each asset's supply is unchanged."""
    operator = operator_of(cmd.operator)
    # Payer, payee and operator are three different accounts.
    if len({cmd.from_, cmd.to, operator}) != 3:
        raise InvalidCommand("payer, payee and operator must be three different accounts")
    # All three exist and none is frozen.
    for account in (cmd.from_, cmd.to, operator):
        _get_live_account(state, account)
    # Both assets exist.
    _check_asset(state, cmd.source_asset)
    _check_asset(state, cmd.asset)
    cost = _get_fx_cost(state, cmd)
    payer_balance = state.get_balance(cmd.from_, cmd.source_asset)
    # The payer has the source funds.
    if payer_balance < cost:
        raise InsufficientFunds(_short_of(state, cmd.from_, cmd.source_asset, payer_balance, cost))
    operator_target = state.get_balance(operator, cmd.asset)
    # The operator holds what it delivers.
    if operator_target < cmd.amount:
        raise InsufficientLiquidity(
            _short_of(state, operator, cmd.asset, operator_target, cmd.amount)
        )
    operator_source = state.get_balance(operator, cmd.source_asset)
    payee_balance = state.get_balance(cmd.to, cmd.asset)
    # No receiving balance exceeds 2**63-1.
    if max(operator_source + cost, payee_balance + cmd.amount) > MAX_AMOUNT:
        raise Overflow("a balance would overflow")
    # A KHQR code it carries binds the payee's side, and a dynamic code pays once.
    paid = check_payment_binding(
        cmd.to, cmd.asset, cmd.amount, cmd.reference, cmd.khqr, ctx.time_ms
    )
    _check_unpaid(state, paid)
    state.set_balance(cmd.from_, cmd.source_asset, payer_balance - cost)
    state.set_balance(operator, cmd.source_asset, operator_source + cost)
    state.set_balance(operator, cmd.asset, operator_target - cmd.amount)
    state.set_balance(cmd.to, cmd.asset, payee_balance + cmd.amount)
    _mark_paid(state, paid)


def _check_settlement_account(state: State, account: str) -> None:
    # Money enters and leaves only through a bank's settlement account admin@<bank>.
    if not is_operator(account):
        raise InvalidCommand(f"{account} is not a settlement account")
    # That bank is registered.
    if state.get_bank(bank_of(account)) is None:
        raise UnknownBank(f"no bank {bank_of(account)}")
    # The account exists and is not frozen.
    _get_live_account(state, account)


def process_issue(state: State, signer: str, cmd: Issue) -> None:
    # Into an existing, unfrozen settlement account of a registered bank.
    _check_settlement_account(state, cmd.to)
    # The asset exists.
    _check_asset(state, cmd.asset)
    # Neither the balance nor the cumulative issued amount exceeds 2**63-1.
    balance = state.get_balance(cmd.to, cmd.asset)
    supply = state.get_supply(cmd.asset)
    if max(balance, supply.issued) + cmd.amount > MAX_AMOUNT:
        raise Overflow(f"issuing {_money(state, cmd.asset, cmd.amount)} would overflow")
    state.set_balance(cmd.to, cmd.asset, balance + cmd.amount)
    state.set_supply(cmd.asset, Supply(supply.issued + cmd.amount, supply.redeemed))


def process_redeem(state: State, signer: str, cmd: Redeem) -> None:
    # Out of an existing, unfrozen settlement account of a registered bank.
    _check_settlement_account(state, cmd.from_)
    # The asset exists.
    _check_asset(state, cmd.asset)
    # The account holds the amount (so redeemed never exceeds issued).
    balance = state.get_balance(cmd.from_, cmd.asset)
    if balance < cmd.amount:
        raise InsufficientFunds(_short_of(state, cmd.from_, cmd.asset, balance, cmd.amount))
    supply = state.get_supply(cmd.asset)
    state.set_balance(cmd.from_, cmd.asset, balance - cmd.amount)
    state.set_supply(cmd.asset, Supply(supply.issued, supply.redeemed + cmd.amount))


def process_create_account(state: State, signer: str, cmd: CreateAccount) -> None:
    # The account's bank is registered.
    if state.get_bank(bank_of(cmd.account)) is None:
        raise UnknownBank(f"no bank {bank_of(cmd.account)}")
    # The account does not exist yet.
    if state.get_account(cmd.account) is not None:
        raise AccountExists(f"account {cmd.account} exists")
    # The role is defined.
    if state.get_role(cmd.role) is None:
        raise InvalidCommand(f"no role {cmd.role}")
    state.set_account(cmd.account, Account(cmd.public_key, cmd.role, 0, False))


def process_register_bank(state: State, signer: str, cmd: RegisterBank) -> None:
    # The bank code is free (so is its operator account: accounts need a registered bank).
    if state.get_bank(cmd.code) is not None:
        raise BankExists(f"bank {cmd.code} exists")
    state.set_bank(Bank(cmd.code, cmd.name, cmd.operator_key, cmd.node_key, False))
    state.set_account(operator_of(cmd.code), Account(cmd.operator_key, BANK_ROLE, 0, False))


def _check_freezable(state: State, account: str) -> Account:
    # The account exists.
    record = state.get_account(account)
    if record is None:
        raise UnknownAccount(f"no account {account}")
    # The central bank's operator is never frozen: it would halt all administration.
    if account == central_bank_operator():
        raise InvalidCommand("the central bank operator cannot be frozen")
    return record


def process_freeze(state: State, signer: str, cmd: Freeze) -> None:
    # An existing account other than the central bank's operator.
    record = _check_freezable(state, cmd.account)
    # Not frozen already.
    if record.frozen:
        raise InvalidCommand(f"account {cmd.account} is already frozen")
    state.set_account(cmd.account, Account(record.public_key, record.role, record.nonce, True))


def process_unfreeze(state: State, signer: str, cmd: Unfreeze) -> None:
    # An existing account other than the central bank's operator.
    record = _check_freezable(state, cmd.account)
    # Currently frozen.
    if not record.frozen:
        raise InvalidCommand(f"account {cmd.account} is not frozen")
    state.set_account(cmd.account, Account(record.public_key, record.role, record.nonce, False))


def get_scheduled_validators(state: State, height: int) -> ValidatorList:
    """The latest validator set scheduled while executing block `height`: what a new
    change in this block builds on."""
    for at in range(height + VALIDATOR_CHANGE_DELAY, height, -1):
        pending = state.get_pending_validators(at)
        if pending is not None:
            return pending
    return state.get_validators()


def _get_bank(state: State, code: str) -> Bank:
    bank = state.get_bank(code)
    if bank is None:
        raise UnknownBank(f"no bank {code}")
    return bank


def _schedule(state: State, ctx: BlockContext, bank: Bank, members: ValidatorList) -> None:
    state.set_pending_validators(ctx.height + VALIDATOR_CHANGE_DELAY, tuple(sorted(members)))
    validator = any(code == bank.code for code, _ in members)
    state.set_bank(Bank(bank.code, bank.name, bank.operator_key, bank.node_key, validator))


def process_add_validator(state: State, ctx: BlockContext, signer: str, cmd: AddValidator) -> None:
    # The bank is registered.
    bank = _get_bank(state, cmd.bank)
    scheduled = get_scheduled_validators(state, ctx.height)
    # It is not (scheduled to be) a validator already.
    if any(code == bank.code for code, _ in scheduled):
        raise ValidatorError(f"bank {bank.code} is already a validator")
    # Its node key is not already a validator's key.
    if any(key == bank.node_key for _, key in scheduled):
        raise ValidatorError(f"node key of {bank.code} already validates")
    # The set stays within MAX_VALIDATORS.
    if len(scheduled) >= MAX_VALIDATORS:
        raise ValidatorError(f"at most {MAX_VALIDATORS} validators")
    _schedule(state, ctx, bank, (*scheduled, (bank.code, bank.node_key)))


def process_remove_validator(
    state: State, ctx: BlockContext, signer: str, cmd: RemoveValidator
) -> None:
    # The bank is registered.
    bank = _get_bank(state, cmd.bank)
    scheduled = get_scheduled_validators(state, ctx.height)
    remaining = tuple(v for v in scheduled if v[0] != bank.code)
    # It is (scheduled to be) a validator.
    if len(remaining) == len(scheduled):
        raise ValidatorError(f"bank {bank.code} is not a validator")
    # The set never becomes empty.
    if not remaining:
        raise ValidatorError("the last validator cannot be removed")
    _schedule(state, ctx, bank, remaining)


def process_command(
    state: State, ctx: BlockContext, signer: str, perms: frozenset[str], cmd: Command
) -> None:
    """Permission first (`perms`: the signer's), then the command's own rules."""
    # The signer's role allows the command.
    if not is_permitted(perms, signer, cmd):
        raise PermissionDenied(f"{signer} may not run {type(cmd).__name__}")
    match cmd:
        case Transfer():
            process_transfer(state, ctx, signer, cmd)
        case CreateAccount():
            process_create_account(state, signer, cmd)
        case Issue():
            process_issue(state, signer, cmd)
        case Redeem():
            process_redeem(state, signer, cmd)
        case Freeze():
            process_freeze(state, signer, cmd)
        case Unfreeze():
            process_unfreeze(state, signer, cmd)
        case RegisterBank():
            process_register_bank(state, signer, cmd)
        case AddValidator():
            process_add_validator(state, ctx, signer, cmd)
        case RemoveValidator():
            process_remove_validator(state, ctx, signer, cmd)
        case SetRate():
            process_set_rate(state, signer, cmd)
        case FxTransfer():
            process_fx_transfer(state, ctx, signer, cmd)
        case _:
            # a command this code does not execute never passes silently
            raise InvalidCommand(f"no rule executes {type(cmd).__name__}")


def check_tx_timing(state: State, ctx: BlockContext, tx: SignedTx) -> None:
    """Stale txs expire; txs from too far in the future wait (mempool) or are rejected."""
    params = state.get_params()
    check_tx_age(tx.body.created_at, ctx.time_ms, params.tx_ttl_ms, params.max_clock_skew_ms)


def check_tx_age(created_at: int, time_ms: int, tx_ttl_ms: int, max_clock_skew_ms: int) -> None:
    """The timing rule itself, at `time_ms` (a block's time, or a node's clock when the
    mempool admits a tx)."""
    # Not older than the chain's tx time-to-live.
    if created_at < time_ms - tx_ttl_ms:
        raise Expired(
            f"tx created at {format_time_ms(created_at)} expired before {format_time_ms(time_ms)}"
        )
    # Not further ahead of block time than the allowed clock skew.
    if created_at > time_ms + max_clock_skew_ms:
        raise FutureTx(
            f"tx created at {format_time_ms(created_at)} is ahead of {format_time_ms(time_ms)}"
        )


def process_block_header(
    header: BlockHeader,
    parent: BlockHeader | None,
    parent_hash: bytes,
    chain_id: str,
    validators: Sequence[tuple[str, bytes]],
) -> None:
    """A header that may follow `parent` (None: the genesis, whose hash is `parent_hash`)
    with `validators` (bank code, node key), in order, as the set of its height. What no
    clock is needed for; a node also refuses a header too far in its future."""
    height = 1 if parent is None else parent.height + 1
    # Meant for this chain.
    if header.chain_id != chain_id:
        raise BlockError("block of another chain", "wrong_chain")
    # The next height.
    if header.height != height:
        raise BlockError(f"block {header.height}, expected {height}", "bad_height")
    # Built on the tip.
    if header.prev_hash != parent_hash:
        raise BlockError("does not extend the tip", "bad_prev_hash")
    # Names the validator set of its height.
    if header.validator_set_hash != compute_validator_set_hash(validators):
        raise BlockError("wrong validator set", "bad_validator_set")
    # Proposed by one of them.
    if header.proposer not in {name for name, _ in validators}:
        raise BlockError(f"proposer {header.proposer!r} is not a validator", "bad_proposer")
    # Time never goes backwards.
    if parent is not None and header.time_ms < parent.time_ms:
        raise BlockError("block time goes backwards", "bad_time")


def process_tx(state: State, ctx: BlockContext, tx: SignedTx) -> None:
    """Tx-level checks, the nonce bump, then every command; raises on the first failure."""
    body = tx.body
    # Meant for this chain.
    if body.chain_id != ctx.chain_id:
        raise WrongChain(f"tx is for chain {body.chain_id!r}")
    # Neither expired nor from the future.
    check_tx_timing(state, ctx, tx)
    # The signer exists.
    signer = state.get_account(body.signer)
    if signer is None:
        raise UnknownAccount(f"no account {body.signer}")
    # Every (already verified) signature is by a key of the signer, and there is one.
    check_signer_keys(tx, signer.get_signing_keys())
    # The signer is not frozen.
    if signer.frozen:
        raise AccountFrozen(f"account {body.signer} is frozen")
    # The nonce is the signer's next one.
    if body.nonce != signer.nonce:
        raise BadNonce(f"nonce {body.nonce}, expected {signer.nonce}")
    state.set_account(body.signer, Account(signer.public_key, signer.role, signer.nonce + 1, False))
    perms = get_role_permissions(state, signer.role)
    for cmd in body.commands:
        process_command(state, ctx, body.signer, perms, cmd)


def get_tx_accounts(tx: SignedTx) -> tuple[str, ...]:
    """Every account a tx names, sorted and unique."""
    names = {tx.body.signer}
    for cmd in tx.body.commands:
        names.update(get_command_accounts(cmd))
    return tuple(sorted(names))


def apply_tx(state: State, ctx: BlockContext, tx: SignedTx) -> TxResult:
    """Apply one tx atomically: all of it, or (on rejection) nothing at all."""
    state.begin()
    try:
        process_tx(state, ctx, tx)
    except StoreError:
        # The store failed, not the tx: never a verdict on the tx (it would reject a
        # client's tx, or call an honest block invalid).
        state.rollback()
        raise
    except LedgerError as exc:
        state.rollback()
        return TxResult(tx.hash, exc.code, get_tx_accounts(tx), exc.message)
    state.commit()
    return TxResult(tx.hash, None, get_tx_accounts(tx))


def process_block_start(state: State, ctx: BlockContext) -> None:
    """Promote the validator set scheduled for this height, if any."""
    pending = state.get_pending_validators(ctx.height)
    if pending is not None:
        state.set_validators(pending)
        state.set_pending_validators(ctx.height, None)


def apply_block(
    reader: KeyValueReader, prev_state_hash: bytes, ctx: BlockContext, txs: Sequence[SignedTx]
) -> BlockResult:
    """Execute a block's txs in order on an overlay of `reader` (state after ctx.height-1)."""
    state = State(reader)
    process_block_start(state, ctx)
    results = tuple([apply_tx(state, ctx, tx) for tx in txs])
    changes = state.changes()
    return BlockResult(compute_state_hash(prev_state_hash, changes), changes, results)
