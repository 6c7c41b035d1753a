"""Factories for ledger tests and benchmarks: a small genesis, deterministic keys, signed
txs, and `Ledger`, a chain kept in a MemoryStore that applies and commits blocks.

    ledger = Ledger()
    result = ledger.apply_tx(ledger.sign("admin@nbc", Issue("admin@aclb", "KHR", 100)))
    assert result.code is None and ledger.balance("admin@aclb", "KHR") == ...
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from genesis.document import Genesis, GenesisAccount, GenesisAsset, GenesisBalance, GenesisBank
from genesis.load import GENESIS_PREV_STATE_HASH, genesis_changes
from ledger.commands import Command, Transfer
from ledger.constants import CENTRAL_BANK_CODE, TX_VERSION
from ledger.crypto import PrivateKey, sha256
from ledger.ids import operator_of
from ledger.kv import KeyValueReader, KeyValueStore
from ledger.permissions import DEFAULT_ROLES
from ledger.state import Account, ChainParams, State
from ledger.store.memory import MemoryStore
from ledger.transition import BlockContext, BlockResult, TxResult, apply_block, compute_state_hash
from ledger.tx import SignedTx, TxBody, sign_tx

CHAIN_ID = "test-chain"
GENESIS_TIME = 1_700_000_000_000
BLOCK_INTERVAL_MS = 1_000

BANKS = (("nbc", True), ("aclb", True), ("wing", True), ("canadia", False))
# Customers: account -> has a key (False: purely custodial, only its bank moves its funds).
CUSTOMERS = {"alice@aclb": True, "bob@aclb": True, "carol@wing": True, "dave@wing": False}
BALANCES = (
    ("admin@aclb", "KHR", 1_000_000),
    ("admin@aclb", "USD", 100_000),
    ("admin@wing", "KHR", 1_000_000),
    ("admin@wing", "USD", 100_000),
    ("alice@aclb", "KHR", 50_000),
    ("alice@aclb", "USD", 10_000),
    ("carol@wing", "KHR", 50_000),
    ("dave@wing", "KHR", 20_000),
)


def make_key(label: str) -> PrivateKey:
    """The same key for the same label, in every test run."""
    return PrivateKey(sha256(b"bakong-test-key/" + label.encode()))


def make_node_key(bank: str) -> PrivateKey:
    return make_key(f"node/{bank}")


def make_genesis(
    banks: Sequence[tuple[str, bool]] = BANKS,
    customers: dict[str, bool] | None = None,
    balances: Iterable[tuple[str, str, int]] = BALANCES,
    params: ChainParams | None = None,
) -> Genesis:
    """A small network: `nbc` plus the given banks, customers and balances (minor units)."""
    customers = CUSTOMERS if customers is None else customers
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time=GENESIS_TIME,
        params=params or ChainParams(),
        assets=(GenesisAsset("KHR", 0), GenesisAsset("USD", 2)),
        roles=tuple(sorted(DEFAULT_ROLES.items())),
        central_bank=CENTRAL_BANK_CODE,
        banks=tuple(
            GenesisBank(
                code,
                f"Bank {code}",
                make_key(operator_of(code)).public_key,
                make_node_key(code).public_key,
                validator,
            )
            for code, validator in banks
        ),
        accounts=tuple(
            GenesisAccount(account, make_key(account).public_key if keyed else b"", "customer")
            for account, keyed in customers.items()
        ),
        balances=tuple(GenesisBalance(a, asset, amount) for a, asset, amount in balances),
    )


def make_tx(
    signer: str,
    nonce: int,
    *commands: Command,
    created_at: int = GENESIS_TIME,
    memo: str = "",
    chain_id: str = CHAIN_ID,
    key: PrivateKey | None = None,
) -> SignedTx:
    """A tx signed by `key` (default: the signer's own deterministic key)."""
    body = TxBody(TX_VERSION, chain_id, signer, nonce, created_at, tuple(commands), memo)
    return sign_tx(body, key or make_key(signer))


@dataclass
class Ledger:
    """A chain in memory: genesis at height 0, then one committed block per `apply`."""

    genesis: Genesis = field(default_factory=make_genesis)
    store: KeyValueStore = field(default_factory=MemoryStore)
    height: int = 0
    state_hash: bytes = b""
    time_ms: int = GENESIS_TIME

    def __post_init__(self) -> None:
        changes = genesis_changes(self.genesis)
        with self.store.atomic_batch() as batch:
            for key, value in changes.items():
                batch.put(key, value)
        self.state_hash = compute_state_hash(GENESIS_PREV_STATE_HASH, changes)

    def state(self) -> State:
        """A fresh overlay on the committed state."""
        return State(self.store)

    def context(self) -> BlockContext:
        return BlockContext(CHAIN_ID, self.height + 1, self.time_ms + BLOCK_INTERVAL_MS)

    def nonce(self, account: str) -> int:
        record = self.state().get_account(account)
        return record.nonce if record is not None else 0

    def sign(
        self,
        signer: str,
        *commands: Command,
        nonce: int | None = None,
        created_at: int | None = None,
        key: PrivateKey | None = None,
        memo: str = "",
    ) -> SignedTx:
        """A tx with the signer's next committed nonce (pass nonce= for several per block)
        created at the current chain time."""
        return make_tx(
            signer,
            self.nonce(signer) if nonce is None else nonce,
            *commands,
            created_at=self.time_ms if created_at is None else created_at,
            memo=memo,
            key=key,
        )

    def apply(self, txs: Sequence[SignedTx], ctx: BlockContext | None = None) -> BlockResult:
        """Execute and commit one block (rejected txs are simply not applied)."""
        ctx = ctx or self.context()
        result = apply_block(self.store, self.state_hash, ctx, txs)
        with self.store.atomic_batch() as batch:
            for key, value in result.changes.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
        self.height, self.time_ms, self.state_hash = ctx.height, ctx.time_ms, result.state_hash
        return result

    def apply_tx(self, tx: SignedTx) -> TxResult:
        return self.apply([tx]).results[0]

    def account(self, account: str) -> Account | None:
        return self.state().get_account(account)

    def balance(self, account: str, asset: str) -> int:
        return self.state().get_balance(account, asset)

    def dump(self) -> dict[bytes, bytes]:
        """Every state key and value: for byte-identical comparisons."""
        return dict(self.store.iterate(b"s/"))


def dump_state(reader: KeyValueReader) -> dict[bytes, bytes]:
    return dict(reader.iterate(b"s/"))


def make_transfer_txs(
    count: int,
    senders: Sequence[str] = ("alice@aclb", "carol@wing"),
    receivers: Sequence[str] = ("bob@aclb", "admin@wing"),
    asset: str = "KHR",
    amount: int = 1,
) -> list[SignedTx]:
    """`count` signed transfers from a default-genesis ledger, round-robin over senders,
    with consecutive nonces from 0: valid in order, in any block split."""
    nonces = dict.fromkeys(senders, 0)
    txs = []
    for i in range(count):
        sender = senders[i % len(senders)]
        to = receivers[i % len(receivers)]
        txs.append(make_tx(sender, nonces[sender], Transfer(sender, to, asset, amount)))
        nonces[sender] += 1
    return txs
