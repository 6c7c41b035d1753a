"""One exception base for the ledger; every error carries a stable, machine-readable code."""

from __future__ import annotations


class CodedError(Exception):
    """What every package's error base shares: a message and a stable, machine-readable
    `code`. Each package has its own base (LedgerError, ConsensusError, GenesisError,
    NodeError) so that catching one never catches another layer's errors."""

    code: str = "error"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message or self.code)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class LedgerError(CodedError):
    """Base of every ledger error. `code` is stable and part of the public contract."""

    code = "ledger_error"


class CodecError(LedgerError):
    """Bytes that are not a canonical encoding of the expected container."""

    code = "malformed"


class InvalidId(LedgerError):
    code = "invalid_id"


class InvalidAmount(LedgerError):
    code = "invalid_amount"


class KeyFileError(LedgerError):
    code = "bad_key_file"


# Stateless transaction checks.
class BadSignature(LedgerError):
    code = "bad_signature"


class WrongChain(LedgerError):
    code = "wrong_chain"


class MalformedTx(LedgerError):
    code = "malformed_tx"


# Stateful transaction checks (reasons a tx is rejected).
class UnknownAccount(LedgerError):
    code = "unknown_account"


class AccountExists(LedgerError):
    code = "account_exists"


class AccountFrozen(LedgerError):
    code = "account_frozen"


class BadNonce(LedgerError):
    code = "bad_nonce"


class PermissionDenied(LedgerError):
    code = "permission_denied"


class InsufficientFunds(LedgerError):
    code = "insufficient_funds"


class UnknownAsset(LedgerError):
    code = "unknown_asset"


class UnknownBank(LedgerError):
    code = "unknown_bank"


class BankExists(LedgerError):
    code = "bank_exists"


class Expired(LedgerError):
    code = "expired"


class FutureTx(LedgerError):
    code = "future_tx"


class Overflow(LedgerError):
    code = "overflow"


class InvalidCommand(LedgerError):
    code = "invalid_command"


class ValidatorError(LedgerError):
    code = "invalid_validator_change"


# Payment references and cross-border payments.
class AlreadyPaid(LedgerError):
    """A single-use payment reference (a dynamic KHQR code's md5) has paid already."""

    code = "already_paid"


class ReferenceMismatch(LedgerError):
    """A transfer's KHQR code does not bind it: the code does not read, pays someone
    else, asks another amount or currency, or has expired; or a plain reference poses
    as a KHQR md5 without the code."""

    code = "reference_mismatch"


class UnknownRate(LedgerError):
    code = "unknown_rate"


class RateChanged(LedgerError):
    """The source amount a payer signed is not what the published rate asks now."""

    code = "rate_changed"


class InsufficientLiquidity(LedgerError):
    """The cross-border operator lacks the target asset to deliver."""

    code = "insufficient_liquidity"


# Store and chain.
class StoreError(LedgerError):
    code = "store_error"


class GenesisMismatch(StoreError):
    code = "genesis_mismatch"


class StoreFormatError(StoreError):
    """The store was written in a block format this version does not read."""

    code = "store_format"


class StoreVersionError(StoreError):
    """The store's schema version is not this version's."""

    code = "store_version"


class BlockError(LedgerError):
    code = "invalid_block"
