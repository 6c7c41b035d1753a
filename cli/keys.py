"""`bakong keys`: create, list, show, import and export the wallet's account keys."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from cli.keystore import Keystore, KeystoreError, load_signing_key, resolve_passphrase
from cli.options import home_option, json_option, user_errors
from ledger.crypto import PrivateKey
from ledger.ids import AccountId, parse_account_id
from node.keyfile import read_key_file, write_key_file

_SEED_HEX_RE = re.compile(r"[0-9a-fA-F]{64}")


@click.group()
def keys() -> None:
    """Account keys in the encrypted wallet (HOME/wallet/<account>.json, mode 0600).

    The passphrase comes from BAKONG_PASSPHRASE, or else a prompt. A local testnet made
    by `bakong testnet init` uses the published development passphrase "bakong-dev"
    (cli.keystore.DEV_PASSPHRASE) and needs neither: never keep real funds behind it.
    """


@keys.command("new")
@click.argument("account")
@click.option("--force", is_flag=True, help="Replace an existing key (the old one is lost).")
@json_option
@home_option
def new_key(account: str, force: bool, as_json: bool, home: Path) -> None:
    """Generate a new Ed25519 key for ACCOUNT (name@bank) and store it encrypted."""
    with user_errors():
        account_id = parse_account_id(account)
        keystore = Keystore(home)
        _refuse_overwrite(keystore, account_id, force)
        key = PrivateKey.generate()
        path = keystore.save(account_id, key, resolve_passphrase(home, confirm=True))
    _print_key(account_id, key.public_key, path, as_json)


@keys.command("list")
@json_option
@home_option
def list_keys(as_json: bool, home: Path) -> None:
    """List the accounts in the wallet and their public keys (no passphrase needed)."""
    with user_errors():
        entries = Keystore(home).list()
    if as_json:
        rows = [{"account": a, "public_key": pk.hex()} for a, pk in entries]
        click.echo(json.dumps(rows))
        return
    if not entries:
        click.echo(f"no keys in {Keystore(home).directory}")
        return
    width = max(len("ACCOUNT"), *(len(a) for a, _ in entries))
    click.echo(f"{'ACCOUNT':<{width}}  PUBLIC KEY")
    for account, public_key in entries:
        click.echo(f"{account:<{width}}  {public_key.hex()}")


@keys.command("show")
@click.argument("account")
@json_option
@home_option
def show_key(account: str, as_json: bool, home: Path) -> None:
    """Show ACCOUNT's public key and keystore file (no passphrase needed)."""
    with user_errors():
        keystore = Keystore(home)
        sealed = keystore.read(parse_account_id(account))
    _print_key(sealed.account, sealed.public_key, keystore.path_of(sealed.account), as_json)


@keys.command("import")
@click.argument("account")
@click.option(
    "--seed-hex",
    metavar="HEX",
    help="The 32-byte secret seed as 64 hex digits; '-' reads it from stdin.",
)
@click.option(
    "--file",
    "key_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A plain key file, as written by `keys export --out` (or a node key file).",
)
@click.option("--force", is_flag=True, help="Replace an existing key (the old one is lost).")
@json_option
@home_option
def import_key(
    account: str,
    seed_hex: str | None,
    key_file: Path | None,
    force: bool,
    as_json: bool,
    home: Path,
) -> None:
    """Store an existing key for ACCOUNT, encrypted. Give exactly one of --seed-hex, --file."""
    if (seed_hex is None) == (key_file is None):
        raise click.UsageError("give exactly one of --seed-hex or --file")
    with user_errors():
        account_id = parse_account_id(account)
        keystore = Keystore(home)
        _refuse_overwrite(keystore, account_id, force)
        key = read_key_file(key_file) if key_file else _parse_seed_hex(seed_hex or "")
        path = keystore.save(account_id, key, resolve_passphrase(home, confirm=True))
    _print_key(account_id, key.public_key, path, as_json)


@keys.command("export")
@click.argument("account")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write a plain (unencrypted) key file, mode 0600, instead of printing the seed.",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@home_option
def export_key(account: str, out: Path | None, force: bool, home: Path) -> None:
    """Print ACCOUNT's secret seed (hex), or write it to a plain key file with --out.

    The output is unencrypted: whoever holds it can sign as ACCOUNT.
    """
    with user_errors():
        account_id = parse_account_id(account)
        # refuse before asking for the passphrase
        if out is not None and out.exists() and not force:
            raise KeystoreError(f"{out} exists; use --force to overwrite it", "file_exists")
        key = load_signing_key(home, account_id)
    click.echo(
        f"warning: this is the unencrypted secret key of {account_id}; "
        "anyone who has it can sign as that account",
        err=True,
    )
    if out is None:
        click.echo(key.seed.hex())
        return
    write_key_file(out, key)
    click.echo(f"wrote the key of {account_id} to {out}")


def _refuse_overwrite(keystore: Keystore, account: AccountId, force: bool) -> None:
    # a replaced key cannot be recovered, so it takes an explicit --force
    if keystore.has(account) and not force:
        raise KeystoreError(
            f"{account} already has a key in {keystore.directory}; use --force", "key_exists"
        )


def _parse_seed_hex(text: str) -> PrivateKey:
    """64 hex digits (surrounding whitespace ignored); '-' reads them from stdin."""
    value = (sys.stdin.readline() if text == "-" else text).strip()
    if _SEED_HEX_RE.fullmatch(value) is None:
        raise KeystoreError("a seed is 32 bytes written as 64 hex digits", "invalid_seed")
    return PrivateKey(bytes.fromhex(value))


def _print_key(account: str, public_key: bytes, path: Path, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps({"account": account, "public_key": public_key.hex(), "path": str(path)})
        )
        return
    click.echo(f"account     {account}")
    click.echo(f"public key  {public_key.hex()}")
    click.echo(f"keystore    {path}")
