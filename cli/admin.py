"""The central bank's administration of the network: `bakong bank register` admits a
bank, `bakong validator add|remove` changes the validator set. Signer admin@nbc (the
ledger refuses anyone else: `permission_denied`).

A validator change committed in block h takes effect at height h + 2 (the rule in
`ledger.state.get_validator_set`): the blocks from h + 2 on are voted and committed by
the new set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import click

from cli.keystore import Keystore
from cli.options import user_errors
from cli.session import TxError, TxOptions, TxSession, report, tx_options
from ledger.commands import AddValidator, Command, RegisterBank, RemoveValidator
from ledger.constants import PUBLIC_KEY_SIZE
from ledger.crypto import PrivateKey
from ledger.ids import central_bank_operator, operator_of, parse_bank_code
from ledger.transition import VALIDATOR_CHANGE_DELAY
from node.keyfile import read_key_file, write_key_file

BANKS_DIR: Final = "banks"
NODE_KEY_FILE: Final = "node_key.json"


def get_bank_node_key_path(home: Path, bank: str) -> Path:
    """Where `bank register` keeps the node key it made for a bank without a node yet."""
    return home / BANKS_DIR / bank / NODE_KEY_FILE


def _parse_public_key(text: str, option: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != PUBLIC_KEY_SIZE:
        raise TxError(
            f"{option} must be a {PUBLIC_KEY_SIZE}-byte public key as "
            f"{2 * PUBLIC_KEY_SIZE} hex digits",
            "invalid_public_key",
        )
    return value


# ---------------------------------------------------------------------------------------
# bank register


@click.group("bank")
def bank_group() -> None:
    """Banks on the ledger (the central bank admits them)."""


@bank_group.command("register")
@click.argument("code")
@click.option("--name", required=True, help="The bank's name, e.g. 'Prince Bank'.")
@click.option(
    "--operator-key",
    metavar="HEX",
    help="Register this Ed25519 public key for the settlement account admin@CODE (its "
    "secret stays elsewhere; this wallet cannot sign for the bank then).",
)
@click.option(
    "--new-key",
    is_flag=True,
    help="Generate a new key for admin@CODE into the wallet (refused if the wallet "
    "already holds one).",
)
@click.option(
    "--node-key",
    metavar="HEX",
    help="The public key of the node the bank will run (what `validator add` makes "
    "vote). Default: a new node key, kept in HOME/banks/CODE/node_key.json.",
)
@tx_options
def register(
    code: str,
    name: str,
    operator_key: str | None,
    new_key: bool,
    node_key: str | None,
    opts: TxOptions,
) -> None:
    """Admit bank CODE to the network (signer: admin@nbc).

    CODE is 2-16 of [a-z0-9].

    The ledger also opens its settlement account admin@CODE, with the operator key:
    --operator-key HEX, or the wallet's key for admin@CODE, or (--new-key, or when the
    wallet has none) a new key stored in the wallet before the tx is sent and removed
    again if the network rejects it. The bank runs no node until one is set up with
    its node key. Next: give it money (`bakong issue --to admin@CODE ...`) and open
    its customers' accounts (`bakong account create NAME@CODE`).

    Errors: bank_exists (the code is taken), permission_denied (not signed by the
    central bank).
    """
    if operator_key is not None and new_key:
        raise click.UsageError("give at most one of --operator-key and --new-key")
    with user_errors():
        bank = parse_bank_code(code)
        if not name.strip():
            raise TxError("--name must not be empty", "invalid_argument")
        account = operator_of(bank)
        keystore = Keystore(opts.home)
        public_key, wallet_key = _choose_operator_key(keystore, account, operator_key, new_key)
        # a new node key is written only once the tx is signed: nothing is left behind
        # by a tx that cannot be made
        node_key_path, new_node_key = None, None
        if node_key is not None:
            node_public_key = _parse_public_key(node_key, "--node-key")
        else:
            node_key_path = get_bank_node_key_path(opts.home, bank)
            if node_key_path.is_file():
                node_public_key = read_key_file(node_key_path).public_key
            else:
                new_node_key = PrivateKey.generate()
                node_public_key = new_node_key.public_key
        session = TxSession(opts)
        command = RegisterBank(bank, name, public_key, node_public_key)
        tx = session.sign(command, central_bank_operator())
        if node_key_path is not None and new_node_key is not None:
            write_key_file(node_key_path, new_node_key)
        try:
            session.run_with_new_key(tx, keystore, account, wallet_key)
        except TxError as exc:
            # rejected (not merely still pending): the node key made for it has no use
            if exc.code != "tx_pending" and node_key_path is not None and new_node_key:
                node_key_path.unlink(missing_ok=True)
            raise
    if opts.as_json or opts.offline or not opts.wait:
        return
    where = f"key in {keystore.path_of(account)}" if keystore.has(account) else "key elsewhere"
    click.echo(f"bank {bank}: settlement account {account} ({where})")
    if node_key_path is not None:
        click.echo(f"its node key: {node_key_path}")


def _choose_operator_key(
    keystore: Keystore, account: str, operator_key: str | None, new_key: bool
) -> tuple[bytes, PrivateKey | None]:
    """The operator's public key, and the new wallet key when one is to be made."""
    if operator_key is not None:
        return _parse_public_key(operator_key, "--operator-key"), None
    if keystore.has(account) and new_key:
        raise TxError(
            f"the wallet already holds a key for {account} ({keystore.path_of(account)}); "
            "drop --new-key to register that one",
            "key_exists",
        )
    if keystore.has(account):
        return keystore.read(account).public_key, None
    key = PrivateKey.generate()
    return key.public_key, key


# ---------------------------------------------------------------------------------------
# validator add|remove


@click.group("validator")
def validator_group() -> None:
    """The validator set: banks whose nodes vote on blocks.

    Only the central bank (admin@nbc) changes it. A change committed at height h
    takes effect at height h + 2. With n validators the chain commits while
    floor(2n/3) + 1 of them vote: add only a bank whose node runs and reaches the
    others.
    """


@validator_group.command("add")
@click.argument("bank")
@tx_options
def add(bank: str, opts: TxOptions) -> None:
    """Make BANK's node a validator (signer: admin@nbc).

    The node key the bank registered joins the validator set; it votes from two
    heights after the commit. Errors: unknown_bank, invalid_validator_change (already
    a validator, its node key already validates, or the set is full),
    permission_denied (not signed by the central bank).
    """
    with user_errors():
        code = parse_bank_code(bank)
        _run_change(TxSession(opts), AddValidator(code), f"{code} votes from height")


@validator_group.command("remove")
@click.argument("bank")
@tx_options
def remove(bank: str, opts: TxOptions) -> None:
    """Take BANK's node out of the validator set (signer: admin@nbc).

    It stops voting two heights after the commit; its node keeps following the chain.
    Errors: unknown_bank, invalid_validator_change (not a validator, or the last one),
    permission_denied (not signed by the central bank).
    """
    with user_errors():
        code = parse_bank_code(bank)
        _run_change(TxSession(opts), RemoveValidator(code), f"{code} stops voting at height")


def _run_change(session: TxSession, command: Command, effect: str) -> None:
    status = session.deliver(session.sign(command, central_bank_operator()))
    if status is None:
        return
    report(status, session.opts)
    if status["status"] == "committed" and not session.opts.as_json:
        click.echo(f"{effect} {int(status['height']) + VALIDATOR_CHANGE_DELAY}")
