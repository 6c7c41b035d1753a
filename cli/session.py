"""The signing session every tx command shares: options, the chain's assets, signing with
a key from HOME's wallet, submitting to a node, waiting for the verdict, and reporting it
(one line, or `--json`). `cli/txcmds.py`, `cli/fx.py` and `cli/pay.py` build commands on it.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import click
from rich.console import Console

from cli.client import NodeClient, NodeReplyError, NodeUnreachable
from cli.errors import CliError
from cli.keystore import Keystore, load_signing_key, resolve_passphrase
from cli.options import home_option, json_option, node_option
from genesis.load import load_genesis_file
from ledger.commands import (
    Command,
)
from ledger.constants import TX_VERSION
from ledger.crypto import PrivateKey
from ledger.errors import InvalidAmount, UnknownAsset
from ledger.ids import (
    parse_account_id,
    parse_amount,
)
from ledger.tx import SignedTx, TxBody, compute_next_nonce, sign_tx

DEFAULT_WAIT_S: Final = 30.0
GENESIS_FILE: Final = "genesis.json"

# Why the network refused a tx, in words; the code itself is the contract.
REASONS: Final[Mapping[str, str]] = {
    "insufficient_funds": "the balance is too low",
    "unknown_account": "an account it names does not exist",
    "account_frozen": "an account it names is frozen",
    "permission_denied": "the signer is not allowed to do this",
    "account_exists": "the account already exists",
    "unknown_asset": "the asset is not defined on this chain",
    "bad_nonce": "its nonce is already used or out of reach",
    "nonce_taken": "another pending tx already uses its nonce",
    "bad_signature": "it is not signed by the signer's registered key",
    "expired": "it is older than the chain's tx time-to-live",
    "future_tx": "its creation time is ahead of the node's clock",
    "duplicate": "the same tx is already pending",
    "already_committed": "the same tx is already committed (a replay)",
    "wrong_chain": "it was signed for another chain",
    "already_paid": "its KHQR code was already paid (a dynamic code pays once)",
    "reference_mismatch": "its KHQR code does not bind it (payee, currency, amount, expiry), "
    "or its reference poses as a KHQR md5",
    "unknown_rate": "no exchange rate is published for that operator and pair",
    "rate_changed": "the published exchange rate changed since it was signed",
    "insufficient_liquidity": "the cross-border operator lacks the currency to deliver",
}


class TxError(CliError):
    code = "tx_error"


class TxInterrupted(CliError):
    """Ctrl-C while a tx was on its way or waited for: it may still commit (exit 130)."""

    code = "interrupted"
    exit_code = 130


@dataclass(frozen=True, slots=True)
class ChainInfo:
    """What signing needs to know about the chain: its id and each asset's decimals."""

    chain_id: str
    decimals: Mapping[str, int]

    def parse_amount(self, asset: str, text: str) -> int:
        """A decimal string in the asset's units -> minor units, checked before signing."""
        decimals = self.decimals.get(asset)
        # only assets the chain defines
        if decimals is None:
            known = ", ".join(sorted(self.decimals)) or "none"
            raise UnknownAsset(f"asset {asset!r} is not defined on this chain (known: {known})")
        value = parse_amount(text, decimals)
        # a zero amount moves nothing and the ledger refuses it
        if value == 0:
            raise InvalidAmount(f"bad amount {text!r}: must be more than zero")
        return value


@dataclass(frozen=True, slots=True)
class TxOptions:
    home: Path
    node_url: str | None
    signer: str | None
    nonce: int | None
    memo: str
    offline: bool
    wait: bool
    timeout: float
    as_json: bool


def _tx_option_list() -> list[Callable[[Any], Any]]:
    return [
        click.option(
            "--as",
            "signer",
            metavar="ACCOUNT",
            help="Sign as this wallet account instead of the command's default signer.",
        ),
        click.option(
            "--nonce",
            type=click.IntRange(min=0),
            help="Use this nonce instead of asking the node for the signer's next one.",
        ),
        click.option("--memo", default="", help="A note stored with the transaction."),
        click.option(
            "--offline",
            is_flag=True,
            help="Print the signed tx as one hex line and send nothing (submit it later with "
            "`bakong tx send`). Without --nonce the signer's next nonce is read from a node; "
            "with --nonce no node is contacted. The tx expires after the chain's tx TTL.",
        ),
        click.option(
            "--wait/--no-wait",
            default=True,
            show_default=True,
            help="Wait until the network commits or rejects the tx.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0),
            default=DEFAULT_WAIT_S,
            show_default=True,
            help="Seconds to wait for the verdict.",
        ),
        node_option,
        json_option,
        home_option,
    ]


def tx_options(func: Callable[..., None]) -> Callable[..., None]:
    """The options every signing command shares, handed to the command as one TxOptions."""

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> None:
        names = TxOptions.__slots__
        opts = TxOptions(**{name: kwargs.pop(name) for name in names})
        func(opts=opts, **kwargs)

    command: Callable[..., None] = wrapper
    for option in reversed(_tx_option_list()):
        command = option(command)
    return command


class TxSession:
    """One signing command: the chain, the node (contacted only when needed), the verdict."""

    def __init__(self, opts: TxOptions) -> None:
        self.opts = opts
        self.client = NodeClient(opts.home, opts.node_url)
        self._chain: ChainInfo | None = None

    @property
    def chain(self) -> ChainInfo:
        if self._chain is None:
            self._chain = self._load_chain()
        return self._chain

    def _load_chain(self) -> ChainInfo:
        """From HOME's genesis.json when there is one (no node needed), else from a node."""
        path = self.opts.home / GENESIS_FILE
        if path.is_file():
            genesis = load_genesis_file(path)
            return ChainInfo(genesis.chain_id, {a.code: a.decimals for a in genesis.assets})
        # offline with --nonce promises not to contact a node
        if self.opts.offline and self.opts.nonce is not None:
            raise TxError(
                f"no {path}: cannot sign offline without the chain's genesis", "no_genesis"
            )
        status = self.client.get_status()
        return ChainInfo(str(status["chain_id"]), self.client.get_assets())

    def sign(self, command: Command, default_signer: str) -> SignedTx:
        signer = parse_account_id(self.opts.signer or default_signer)
        key = load_signing_key(self.opts.home, signer)
        nonce = self.opts.nonce if self.opts.nonce is not None else self._read_nonce(signer)
        body = TxBody(
            TX_VERSION,
            self.chain.chain_id,
            signer,
            nonce,
            int(time.time() * 1000),
            (command,),
            self.opts.memo,
        )
        return sign_tx(body, key)

    def _read_nonce(self, signer: str) -> int:
        try:
            return self.get_next_nonce(signer)
        except NodeUnreachable as exc:
            if not self.opts.offline:
                raise
            raise NodeUnreachable(f"{exc.message}; offline without a node, give --nonce N") from exc

    def get_next_nonce(self, signer: str) -> int:
        """The committed next nonce, or past the signer's txs still waiting in the mempool."""
        account = self.client.get_account(signer)
        pending = [int(n) for n in account.get("pending_nonces", [])]
        return compute_next_nonce(int(account["nonce"]), pending)

    def deliver(self, tx: SignedTx) -> dict[str, Any] | None:
        """Print (offline) or submit and wait; returns the status, None when offline."""
        if self.opts.offline:
            print_offline(tx, self.opts.as_json)
            return None
        return submit(self.client, tx.encode(), tx.hash.hex(), self.opts)

    def run(self, command: Command, default_signer: str) -> None:
        status = self.deliver(self.sign(command, default_signer))
        if status is not None:
            report(status, self.opts)

    def run_with_new_key(
        self, tx: SignedTx, keystore: Keystore, account: str, new_key: PrivateKey | None
    ) -> None:
        """Deliver and report a signed tx that registers `new_key` for `account`: the key
        is stored before anything is sent (a committed account never lacks its key) and
        removed again if the network rejects the tx."""
        if new_key is not None:
            keystore.save(account, new_key, resolve_passphrase(self.opts.home, confirm=True))
        status = self.deliver(tx)
        if status is not None and new_key is not None and status["status"] == "rejected":
            keystore.path_of(account).unlink(missing_ok=True)
        if status is not None:
            report(status, self.opts)


def print_offline(tx: SignedTx, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"hash": tx.hash.hex(), "tx": tx.encode().hex()}))
    else:
        click.echo(tx.encode().hex())


def submit(client: NodeClient, raw: bytes, tx_hash: str, opts: TxOptions) -> dict[str, Any]:
    """POST the tx and, unless --no-wait, long-poll for the verdict.
    A refusal at the door (4xx) is reported like a rejection, with the node's code."""
    try:
        client.submit_tx(raw)
    except NodeReplyError as exc:
        if not 400 <= exc.status < 500:
            raise
        refused = {"hash": tx_hash, "status": "rejected", "height": None, "error": exc.code}
        return refused | {"message": f"refused by {client.url}: {exc.message}"}
    except KeyboardInterrupt:
        raise TxInterrupted(
            f"stopped while sending; tx {tx_hash} may or may not have reached the node: "
            f"bakong tx status {tx_hash}"
        ) from None
    if not opts.wait:
        return {"hash": tx_hash, "status": "pending", "height": None}
    try:
        with _spinner(f"waiting for tx {tx_hash} to commit (Ctrl-C stops waiting)", opts.as_json):
            return wait_for_verdict(client, tx_hash, opts.timeout)
    except KeyboardInterrupt:
        raise TxInterrupted(
            f"stopped waiting; tx {tx_hash} was submitted and may still commit: "
            f"bakong tx status {tx_hash}"
        ) from None


def wait_for_verdict(client: NodeClient, tx_hash: str, timeout_s: float) -> dict[str, Any]:
    """Long-poll until committed or rejected, or until `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        try:
            status = client.get_tx(tx_hash, wait_ms=max(0, remaining_ms))
        except NodeReplyError as exc:
            # a node we failed over to may not have heard of the tx yet
            if exc.code != "not_found" or remaining_ms <= 0:
                raise
            time.sleep(0.2)
            continue
        if status.get("status") != "pending" or remaining_ms <= 0:
            return status


@contextmanager
def _spinner(text: str, quiet: bool) -> Iterator[None]:
    """A spinner on stderr for people at a terminal; nothing for scripts."""
    console = Console(stderr=True)
    show = console.is_terminal and not quiet
    with console.status(text) if show else nullcontext():
        yield


def get_status_json(status: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's tx status shape {"hash", "status", "height", "error"?}, plus
    "position" when committed and "message" when a node refused it at the door."""
    out = {key: status.get(key) for key in ("hash", "status", "height")}
    for key in ("position", "error", "message"):
        if status.get(key) is not None:
            out[key] = status[key]
    return out


def report(status: Mapping[str, Any], opts: TxOptions) -> None:
    """Print the verdict; exit non-zero unless committed (or pending under --no-wait)."""
    shape = get_status_json(status)
    tx_hash, state = shape["hash"], shape["status"]
    settled = state == "committed" or (state == "pending" and not opts.wait)
    if opts.as_json:
        click.echo(json.dumps(shape))
        if not settled:
            raise SystemExit(1)
        return
    if state == "committed":
        click.echo(f"committed tx {tx_hash} at height {shape['height']}")
    elif state == "pending" and not opts.wait:
        click.echo(f"submitted tx {tx_hash}; follow it with: bakong tx status {tx_hash}")
    elif state == "pending":
        raise TxError(
            f"tx {tx_hash} is still pending after {opts.timeout:g} s; "
            f"check it with: bakong tx status {tx_hash}",
            "tx_pending",
        )
    else:
        code = str(shape.get("error") or "rejected")
        reason = shape.get("message") or REASONS.get(code, code.replace("_", " "))
        raise TxError(f"tx {tx_hash} was rejected: {reason}", code)


# ---------------------------------------------------------------------------------------
# account create
