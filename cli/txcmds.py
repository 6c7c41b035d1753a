"""Commands that sign a transaction: `account create`, `issue`, `redeem`, `transfer`,
`freeze`, `unfreeze`, plus `tx send` (submit one signed elsewhere) and `tx status`.

Each builds one command, signs it with a key from HOME's wallet, submits it and, by
default, long-polls the node until the network commits or rejects it.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from pathlib import Path

import click

from cli.client import NodeClient
from cli.human import format_local_time, group_amount
from cli.keystore import Keystore
from cli.options import home_option, json_option, node_option, user_errors
from cli.session import (
    DEFAULT_WAIT_S,
    REASONS,
    TxError,
    TxOptions,
    TxSession,
    get_status_json,
    report,
    submit,
    tx_options,
    wait_for_verdict,
)
from ledger.commands import (
    DEFAULT_ROLE,
    CreateAccount,
    Freeze,
    Issue,
    Redeem,
    Transfer,
    Unfreeze,
)
from ledger.constants import PUBLIC_KEY_SIZE
from ledger.crypto import PrivateKey
from ledger.ids import (
    bank_of,
    central_bank_operator,
    operator_of,
    parse_account_id,
)
from ledger.tx import SignedTx


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
        session.run_with_new_key(tx, keystore, account_id, new_key)


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
@click.option(
    "--reference",
    default="",
    help="External payment reference, e.g. a bill number (to pay a KHQR code: bakong pay).",
)
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
        reason = shape.get("message") or REASONS.get(shape["error"], "see the code")
        line += f" ({shape['error']}: {reason})"
    click.echo(line)


@tx_group.command("find")
@click.option("--md5", metavar="MD5", help="The md5 of a KHQR code: every payment made with it.")
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
    "position", "reference", "khqr_md5", "khqr", "signer", "memo"} (an FX payment also
    "operator", "source_currency", "source_amount"). A payment carries the code it pays,
    which every node checked binds it, so only genuine payments of a code are found.
    Nothing paid yet: exit 1, not_found (so a merchant can poll until its code is paid).
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
        paid = ""
        if "operator" in p:
            source = group_amount(p["source_amount"])
            paid = f" (paid {source} {p['source_currency']} via {p['operator']})"
        refs = [f"khqr {p['khqr_md5']}"] if p.get("khqr_md5") else []
        refs += [f"ref {p['reference']}"] if p.get("reference") else []
        click.echo(
            f"{p['hash']}  {p['from']} -> {p['to']}  {group_amount(p['amount'])} "
            f"{p['currency']}{paid}  height {p['height']}  {format_local_time(p['time'])}"
            + "".join(f"  {r}" for r in refs)
        )
