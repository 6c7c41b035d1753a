"""The encrypted wallet: one passphrase-encrypted JSON file per account under `<home>/wallet/`.

A keystore file holds the account id and public key in clear (so `keys list` needs no
passphrase) and the 32-byte Ed25519 seed sealed with ChaCha20-Poly1305 under a key derived
from the passphrase by scrypt. The account id and public key are the AEAD's associated
data, so a file cannot be renamed or re-labelled to another account without detection.

File format (version 1)::

    {"version": 1, "account": "alice@aba", "public_key": "<hex>",
     "kdf": "scrypt", "kdf_params": {"n": 32768, "r": 8, "p": 1, "salt": "<hex>"},
     "cipher": "chacha20poly1305", "nonce": "<hex>", "ciphertext": "<hex>"}

Development passphrase: a local testnet is a toy, and typing a passphrase for every
command would only get in the way. `bakong testnet init` therefore writes every key with
the published passphrase `DEV_PASSPHRASE` ("bakong-dev", with the faster `DEV_SCRYPT`
parameters) and marks the home with `<home>/wallet/wallet.json` = `{"dev_passphrase": true}`.
When `BAKONG_PASSPHRASE` is unset, commands on such a home use the development passphrase
without prompting; when it is set (for your own keys), a key it does not open on such a
home is tried with the development passphrase too. Never put real money behind a home
marked this way: anyone can decrypt it. With `BAKONG_PASSPHRASE` set, `testnet init`
writes the keys under it instead and does not mark the home.
"""

from __future__ import annotations

import json
import os
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import click
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from cli.errors import CliError
from ledger.crypto import PrivateKey
from ledger.errors import LedgerError
from ledger.ids import AccountId, parse_account_id

KEYSTORE_VERSION: Final = 1
DEV_PASSPHRASE: Final = "bakong-dev"
PASSPHRASE_ENV: Final = "BAKONG_PASSPHRASE"
WALLET_DIR: Final = "wallet"
WALLET_META: Final = "wallet.json"

_KDF: Final = "scrypt"
_CIPHER: Final = "chacha20poly1305"
_AAD_TAG: Final = b"bakong-sim/keystore/v1"
_SALT_SIZE: Final = 16
_NONCE_SIZE: Final = 12
_SEED_SIZE: Final = 32
_PUBLIC_KEY_SIZE: Final = 32
# Upper bounds on parameters read from a file, so a hostile file cannot exhaust memory.
_MAX_LOG2_N: Final = 20
_MAX_R: Final = 32
_MAX_P: Final = 16


class KeystoreError(CliError):
    """A wallet failure with a stable code: `key_not_found`, `wrong_passphrase`,
    `bad_keystore`, `no_passphrase`."""

    code = "bad_keystore"


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt cost parameters; stored in every file so they can change per key."""

    n: int
    r: int
    p: int


# Strong default for user keys: about 0.1 s and 32 MiB per derivation.
USER_SCRYPT: Final = ScryptParams(n=2**15, r=8, p=1)
# For keys under the published development passphrase, where cost protects nothing.
DEV_SCRYPT: Final = ScryptParams(n=2**12, r=8, p=1)


def is_valid_scrypt(params: ScryptParams) -> bool:
    n_ok = 2 <= params.n <= 2**_MAX_LOG2_N and params.n & (params.n - 1) == 0
    return n_ok and 1 <= params.r <= _MAX_R and 1 <= params.p <= _MAX_P


_DERIVED_CACHE: dict[tuple[bytes, bytes, ScryptParams], bytes] = {}


def compute_file_key(passphrase: str, salt: bytes, params: ScryptParams) -> bytes:
    """scrypt(passphrase, salt); cached per process since one command may load a key twice."""
    secret = unicodedata.normalize("NFC", passphrase).encode()
    cache_key = (secret, salt, params)
    derived = _DERIVED_CACHE.get(cache_key)
    if derived is None:
        kdf = Scrypt(salt=salt, length=32, n=params.n, r=params.r, p=params.p)
        derived = kdf.derive(secret)
        if len(_DERIVED_CACHE) > 256:
            _DERIVED_CACHE.clear()
        _DERIVED_CACHE[cache_key] = derived
    return derived


def compute_associated_data(account: str, public_key: bytes) -> bytes:
    """What the AEAD authenticates besides the seed: binds the file to its account and key."""
    return _AAD_TAG + b"\x00" + account.encode() + b"\x00" + public_key


def get_default_scrypt(passphrase: str) -> ScryptParams:
    """Strong parameters, except under the published development passphrase."""
    return DEV_SCRYPT if passphrase == DEV_PASSPHRASE else USER_SCRYPT


@dataclass(frozen=True, slots=True)
class KeystoreFile:
    """A parsed keystore file: everything but the plaintext seed."""

    account: AccountId
    public_key: bytes
    params: ScryptParams
    salt: bytes
    nonce: bytes
    ciphertext: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "version": KEYSTORE_VERSION,
            "account": self.account,
            "public_key": self.public_key.hex(),
            "kdf": _KDF,
            "kdf_params": {
                "n": self.params.n,
                "r": self.params.r,
                "p": self.params.p,
                "salt": self.salt.hex(),
            },
            "cipher": _CIPHER,
            "nonce": self.nonce.hex(),
            "ciphertext": self.ciphertext.hex(),
        }

    @staticmethod
    def from_json(raw: object) -> KeystoreFile:
        """Strictly parse a decoded file; any deviation is `bad_keystore` (KeyError etc.)."""
        doc = _expect_dict(raw)
        # only the one format we write
        if doc["version"] != KEYSTORE_VERSION or doc["kdf"] != _KDF or doc["cipher"] != _CIPHER:
            raise ValueError("unsupported version, kdf or cipher")
        kdf = _expect_dict(doc["kdf_params"])
        params = ScryptParams(
            n=_expect_int(kdf["n"]), r=_expect_int(kdf["r"]), p=_expect_int(kdf["p"])
        )
        # a hostile file must not make us allocate gigabytes
        if not is_valid_scrypt(params):
            raise ValueError(f"scrypt parameters out of range: {params}")
        return KeystoreFile(
            account=parse_account_id(doc["account"]),
            public_key=_expect_hex(doc["public_key"], _PUBLIC_KEY_SIZE),
            params=params,
            salt=_expect_hex(kdf["salt"], _SALT_SIZE),
            nonce=_expect_hex(doc["nonce"], _NONCE_SIZE),
            ciphertext=_expect_hex(doc["ciphertext"], _SEED_SIZE + 16),
        )


def _expect_dict(value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("expected a JSON object")
    return value


def _expect_int(value: object) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _expect_hex(value: object, size: int) -> bytes:
    if not isinstance(value, str):
        raise TypeError("expected a hex string")
    data = bytes.fromhex(value)
    if len(data) != size:
        raise ValueError(f"expected {size} bytes, got {len(data)}")
    return data


def seal(
    account: AccountId, key: PrivateKey, passphrase: str, params: ScryptParams
) -> KeystoreFile:
    """Encrypt a seed under a fresh salt and nonce."""
    # never write a file that `from_json` would refuse to read
    if not is_valid_scrypt(params):
        raise KeystoreError(f"scrypt parameters out of range: {params}", "bad_scrypt_params")
    salt = secrets.token_bytes(_SALT_SIZE)
    nonce = secrets.token_bytes(_NONCE_SIZE)
    aead = ChaCha20Poly1305(compute_file_key(passphrase, salt, params))
    aad = compute_associated_data(account, key.public_key)
    ciphertext = aead.encrypt(nonce, key.seed, aad)
    return KeystoreFile(account, key.public_key, params, salt, nonce, ciphertext)


def unseal(sealed: KeystoreFile, passphrase: str) -> PrivateKey:
    """Decrypt a seed; an authentication failure means a wrong passphrase (or tampering)."""
    aead = ChaCha20Poly1305(compute_file_key(passphrase, sealed.salt, sealed.params))
    aad = compute_associated_data(sealed.account, sealed.public_key)
    try:
        seed = aead.decrypt(sealed.nonce, sealed.ciphertext, aad)
    except InvalidTag as exc:
        raise KeystoreError(
            f"wrong passphrase for {sealed.account} (or its keystore file was modified)",
            "wrong_passphrase",
        ) from exc
    key = PrivateKey(seed)
    # a file sealed with a mismatched label would sign as someone else
    if key.public_key != sealed.public_key:
        raise KeystoreError(f"keystore of {sealed.account}: public key does not match the seed")
    return key


class Keystore:
    """The wallet directory of one home: `<home>/wallet/<account>.json`, mode 0600."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.directory = home / WALLET_DIR

    def path_of(self, account: str) -> Path:
        return self.directory / f"{parse_account_id(account)}.json"

    def has(self, account: str) -> bool:
        return self.path_of(account).is_file()

    def save(
        self,
        account: str,
        key: PrivateKey,
        passphrase: str,
        *,
        params: ScryptParams | None = None,
    ) -> Path:
        """Encrypt and write (replacing any existing file atomically); returns the path."""
        account_id = parse_account_id(account)
        sealed = seal(account_id, key, passphrase, params or get_default_scrypt(passphrase))
        path = self.path_of(account_id)
        _write_private(path, json.dumps(sealed.to_json(), indent=2) + "\n")
        return path

    def read(self, account: str) -> KeystoreFile:
        """The parsed file, without decrypting it."""
        account = parse_account_id(account)
        path = self.path_of(account)
        sealed = _read_keystore_file(path)
        # a file copied under another account's name must not be trusted as that account
        if sealed.account != account:
            raise KeystoreError(f"{path} holds the key of {sealed.account}, not {account}")
        return sealed

    def load(self, account: str, passphrase: str) -> PrivateKey:
        return unseal(self.read(account), passphrase)

    def list(self) -> list[tuple[AccountId, bytes]]:
        """(account, public key) of every stored key, sorted by account; no passphrase."""
        if not self.directory.is_dir():
            return []
        paths = sorted(p for p in self.directory.glob("*@*.json") if p.is_file())
        return [(s.account, s.public_key) for s in map(_read_keystore_file, paths)]

    def uses_dev_passphrase(self) -> bool:
        """True when `testnet init` marked this home as using `DEV_PASSPHRASE`."""
        path = self.directory / WALLET_META
        try:
            meta = json.loads(path.read_text())
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as exc:
            raise KeystoreError(f"cannot read {path}: {exc}") from exc
        return isinstance(meta, dict) and meta.get("dev_passphrase") is True

    def mark_dev_passphrase(self) -> None:
        """Record that this home's keys use `DEV_PASSPHRASE` (for `testnet init`)."""
        _write_private(self.directory / WALLET_META, json.dumps({"dev_passphrase": True}) + "\n")


def _read_keystore_file(path: Path) -> KeystoreFile:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        account = path.name.removesuffix(".json")
        raise KeystoreError(f"no key for {account} in {path.parent}", "key_not_found") from exc
    except OSError as exc:
        raise KeystoreError(f"cannot read {path}: {exc}") from exc
    try:
        return KeystoreFile.from_json(json.loads(data))
    except (LedgerError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise KeystoreError(f"{path} is not a valid keystore file: {exc}") from exc


def _write_private(path: Path, text: str) -> None:
    """Write via a 0600 temp file and rename, in a 0700 directory: never a partial key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def resolve_passphrase(home: Path, *, confirm: bool = False) -> str:
    """BAKONG_PASSPHRASE if set, else the development passphrase on a dev testnet home,
    else an interactive prompt (typed twice when `confirm`, i.e. when creating a key)."""
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    if Keystore(home).uses_dev_passphrase():
        return DEV_PASSPHRASE
    try:
        typed: str = click.prompt(
            "Wallet passphrase", hide_input=True, confirmation_prompt=confirm, err=True
        )
    except click.Abort as exc:
        raise KeystoreError(
            f"no passphrase given: set {PASSPHRASE_ENV} or type it at the prompt",
            "no_passphrase",
        ) from exc
    return typed


def load_signing_key(home: Path, account: str) -> PrivateKey:
    """The key of `account` from the wallet of `home`, asking for the passphrase if needed."""
    keystore = Keystore(home)
    # fail on a missing key before asking for a passphrase
    sealed = keystore.read(account)
    passphrase = resolve_passphrase(home)
    try:
        return unseal(sealed, passphrase)
    except KeystoreError as exc:
        # BAKONG_PASSPHRASE exported for your own keys: the testnet's keys of a dev home
        # are still under the published development passphrase
        if exc.code != "wrong_passphrase" or passphrase == DEV_PASSPHRASE:
            raise
        if not keystore.uses_dev_passphrase():
            raise
        try:
            return unseal(sealed, DEV_PASSPHRASE)
        except KeystoreError:
            raise exc from None
