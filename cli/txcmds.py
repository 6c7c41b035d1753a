"""Commands that sign a transaction: `account create`, `issue`, `redeem`, `transfer`,
`freeze`, `unfreeze`, plus `tx send` (submit one signed elsewhere) and `tx status`.

Each builds one command, signs it with a key from HOME's wallet, submits it and, by
default, long-polls the node until the network commits or rejects it.
"""

from __future__ import annotations

import functools
import json
import sys
import time
import urllib.parse
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
from cli.options import home_option, json_option, node_option, user_errors
from genesis.load import load_genesis_file
from ledger.commands import (
    DEFAULT_ROLE,
    Command,
    CreateAccount,
    Freeze,
    Issue,
    Redeem,
    Transfer,
    Unfreeze,
)
from ledger.constants import PUBLIC_KEY_SIZE, TX_VERSION
from ledger.crypto import PrivateKey
from ledger.errors import InvalidAmount, UnknownAsset
from ledger.ids import (
    bank_of,
    central_bank_operator,
    operator_of,
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
    "already_paid": "its payment reference was already paid (a dynamic KHQR code pays once)",
    "unknown_rate": "no exchange rate is published for that operator and pair",
    "rate_changed": "the published exchange rate changed since it was signed",
    "insufficient_liquidity": "the cross-border operator lacks the currency to deliver",
}


class TxError(CliError):
    code = "tx_error"


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
    if not opts.wait:
        return {"hash": tx_hash, "status": "pending", "height": None}
    with _spinner(f"waiting for tx {tx_hash[:16]} to commit...", opts.as_json):
        return wait_for_verdict(client, tx_hash, opts.timeout)


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


@click.group("account")
def account_group() -> None:
    """Open accounts on the ledger (see `bakong balance` and `bakong explorer account`)."""


@account_group.command("create")
@click.argument("account")
@click.option("--role", default=DEFAULT_ROLE, show_default=True, help="The account's role.")
@click.option(
    "--public-key",
    metavar="HEX",
    help="Register this Ed25519 public key (the secret stays elsewhere).",
)
@click.option(
    "--no-key",
    is_flag=True,
    help="A custodial account without a key: only its bank can move its funds.",
)
@tx_options
def create_account(
    account: str, role: str, public_key: str | None, no_key: bool, opts: TxOptions
) -> None:
    """Create ACCOUNT (name@bank), signed by its bank's operator admin@<bank>.

    Unless --public-key or --no-key is given, the account's key is the one already in
    the wallet or, if there is none, a new one generated into the wallet (and removed
    again if the network rejects the account).
    """
    if no_key and public_key is not None:
        raise click.UsageError("give at most one of --public-key and --no-key")
    with user_errors():
        account_id = parse_account_id(account)
        keystore = Keystore(opts.home)
        new_key = _get_new_key(keystore, account_id, public_key, no_key)
        key_bytes = _get_account_public_key(keystore, account_id, public_key, no_key, new_key)
        session = TxSession(opts)
        command = CreateAccount(account_id, key_bytes, role)
        tx = session.sign(command, operator_of(bank_of(account_id)))
        if new_key is not None:
            # stored before anything is sent: a committed account never lacks its key
            keystore.save(account_id, new_key, resolve_passphrase(opts.home, confirm=True))
        status = session.deliver(tx)
        if status is not None and new_key is not None and status["status"] == "rejected":
            keystore.path_of(account_id).unlink(missing_ok=True)
        if status is not None:
            report(status, opts)


def _get_new_key(
    keystore: Keystore, account: str, public_key: str | None, no_key: bool
) -> PrivateKey | None:
    """A fresh key when the account will be self-custody and the wallet has none yet."""
    if no_key or public_key is not None or keystore.has(account):
        return None
    return PrivateKey.generate()


def _get_account_public_key(
    keystore: Keystore,
    account: str,
    public_key: str | None,
    no_key: bool,
    new_key: PrivateKey | None,
) -> bytes:
    if no_key:
        return b""
    if new_key is not None:
        return new_key.public_key
    if public_key is None:
        return keystore.read(account).public_key
    try:
        value = bytes.fromhex(public_key)
    except ValueError:
        value = b""
    if len(value) != PUBLIC_KEY_SIZE:
        raise TxError("--public-key must be 32 bytes as 64 hex digits", "invalid_public_key")
    return value


# ---------------------------------------------------------------------------------------
# money


@click.command("issue")
@click.option("--to", "to", required=True, metavar="ACCOUNT", help="A bank's admin account.")
@click.option("--asset", required=True, help="Asset code, e.g. KHR or USD.")
@click.option("--amount", required=True, help="Decimal amount in the asset's units, e.g. 12.50.")
@tx_options
def issue(to: str, asset: str, amount: str, opts: TxOptions) -> None:
    """Create new money into a bank's settlement account (signer: admin@nbc)."""
    with user_errors():
        session = TxSession(opts)
        asset = asset.upper()
        value = session.chain.parse_amount(asset, amount)
        session.run(Issue(parse_account_id(to), asset, value), central_bank_operator())


@click.command("redeem")
@click.option("--from", "from_", required=True, metavar="ACCOUNT", help="A bank's admin account.")
@click.option("--asset", required=True, help="Asset code, e.g. KHR or USD.")
@click.option("--amount", required=True, help="Decimal amount in the asset's units, e.g. 12.50.")
@tx_options
def redeem(from_: str, asset: str, amount: str, opts: TxOptions) -> None:
    """Take money out of circulation from a bank's settlement account (signer: admin@nbc)."""
    with user_errors():
        session = TxSession(opts)
        asset = asset.upper()
        value = session.chain.parse_amount(asset, amount)
        session.run(Redeem(parse_account_id(from_), asset, value), central_bank_operator())


@click.command("transfer")
@click.option("--from", "from_", required=True, metavar="ACCOUNT", help="The payer.")
@click.option("--to", "to", required=True, metavar="ACCOUNT", help="The payee.")
@click.option("--asset", required=True, help="Asset code, e.g. KHR or USD.")
@click.option("--amount", required=True, help="Decimal amount in the asset's units, e.g. 12.50.")
@click.option("--reference", default="", help="External payment reference (e.g. a KHQR md5).")
@tx_options
def transfer(from_: str, to: str, asset: str, amount: str, reference: str, opts: TxOptions) -> None:
    """Pay AMOUNT of ASSET from one account to another.

    Signed with the payer's own key when the wallet holds it (self-custody), else by
    the payer's bank admin@<bank> (custodial); --as picks the signer explicitly.
    """
    with user_errors():
        payer, payee = parse_account_id(from_), parse_account_id(to)
        session = TxSession(opts)
        asset = asset.upper()
        value = session.chain.parse_amount(asset, amount)
        signer = payer if Keystore(opts.home).has(payer) else operator_of(bank_of(payer))
        session.run(Transfer(payer, payee, asset, value, reference), signer)


@click.command("freeze")
@click.argument("account")
@tx_options
def freeze(account: str, opts: TxOptions) -> None:
    """Freeze ACCOUNT: it can neither send nor receive (signer: admin@nbc)."""
    with user_errors():
        TxSession(opts).run(Freeze(parse_account_id(account)), central_bank_operator())


@click.command("unfreeze")
@click.argument("account")
@tx_options
def unfreeze(account: str, opts: TxOptions) -> None:
    """Lift a freeze on ACCOUNT (signer: admin@nbc)."""
    with user_errors():
        TxSession(opts).run(Unfreeze(parse_account_id(account)), central_bank_operator())


# ---------------------------------------------------------------------------------------
# tx send | status


@click.group("tx")
def tx_group() -> None:
    """Submit a transaction signed offline, or look up a transaction's status."""


@tx_group.command("send")
@click.argument("tx_hex", metavar="HEX|-")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until the network commits or rejects the tx.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_WAIT_S,
    show_default=True,
    help="Seconds to wait for the verdict.",
)
@node_option
@json_option
@home_option
def send(
    tx_hex: str, wait: bool, timeout: float, node_url: str | None, as_json: bool, home: Path
) -> None:
    """Submit a signed tx given as hex (as printed by --offline); '-' reads it from stdin.

    The same tx can be sent to any node, but only once: a replay is refused
    (`already_committed`, or `duplicate` while the first is pending).
    """
    with user_errors():
        raw = _parse_tx_hex(sys.stdin.readline() if tx_hex == "-" else tx_hex)
        tx = SignedTx.decode(raw)
        opts = TxOptions(home, node_url, None, None, "", False, wait, timeout, as_json)
        report(submit(NodeClient(home, node_url), raw, tx.hash.hex(), opts), opts)


def _parse_tx_hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text.strip())
    except ValueError as exc:
        raise TxError("expected the signed tx as hex digits", "bad_hex") from exc


@tx_group.command("status")
@click.argument("tx_hash", metavar="HASH")
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=0,
    help="Seconds to wait for a pending tx to be committed or rejected.",
)
@node_option
@json_option
@home_option
def status(tx_hash: str, wait_s: float, node_url: str | None, as_json: bool, home: Path) -> None:
    """Show whether tx HASH is pending, committed (at which height) or rejected (why)."""
    with user_errors():
        found = wait_for_verdict(NodeClient(home, node_url), tx_hash.lower(), wait_s)
    shape = get_status_json(found)
    if as_json:
        click.echo(json.dumps(shape))
        return
    line = f"tx {shape['hash']}: {shape['status']}"
    if shape["height"] is not None:
        line += f" at height {shape['height']}"
    if "error" in shape:
        line += f" ({shape['error']}: {REASONS.get(shape['error'], 'see the code')})"
    click.echo(line)


@tx_group.command("find")
@click.option("--md5", metavar="MD5", help="The md5 of a KHQR code: every payment of that code.")
@click.option("--reference", metavar="REF", help="Payments carrying exactly this reference.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="At most."
)
@node_option
@json_option
@home_option
def find(
    md5: str | None,
    reference: str | None,
    limit: int,
    node_url: str | None,
    as_json: bool,
    home: Path,
) -> None:
    """Find committed payments by KHQR md5 or reference, oldest first.

    Answers what Bakong's check_transaction_by_md5 does: --json prints a list of
    {"hash", "from", "to", "currency", "amount", "time" (block time, ms), "height",
    "position", "reference", "signer", "memo"}. Nothing paid yet: exit 1, not_found
    (so a merchant can poll until its code is paid).
    """
    if (md5 is None) == (reference is None):
        raise click.UsageError("give exactly one of --md5 and --reference")
    query = {"khqr_md5": md5} if md5 is not None else {"reference": reference}
    with user_errors():
        path = "/v1/transactions?" + urllib.parse.urlencode(query | {"limit": limit})
        reply = NodeClient(home, node_url).request("GET", path)
        found = reply.get("transactions") if isinstance(reply, dict) else None
        if not found:
            raise TxError(f"no committed payment with {next(iter(query.values()))}", "not_found")
    if as_json:
        click.echo(json.dumps(found))
        return
    for p in found:
        paid = f" (paid {p['source_amount']} {p['source_currency']} via {p['operator']})"
        click.echo(
            f"{p['hash']}  {p['from']} -> {p['to']}  {p['amount']} {p['currency']}"
            f"{paid if 'operator' in p else ''}  height {p['height']}  time {p['time']}  "
            f"ref {p['reference']}"
        )
