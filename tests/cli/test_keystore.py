"""The encrypted keystore: round trip, secrecy on disk, permissions, and every error code."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from hypothesis import given, settings
from hypothesis import strategies as st

import cli.keystore as keystore_module
from cli.keystore import (
    DEV_PASSPHRASE,
    DEV_SCRYPT,
    USER_SCRYPT,
    Keystore,
    KeystoreError,
    ScryptParams,
    load_signing_key,
    resolve_passphrase,
)
from ledger.crypto import PrivateKey
from ledger.errors import InvalidId, KeyFileError
from node.keyfile import read_key_file

PASS = "correct horse battery staple"
ALICE = "alice@aba"


@pytest.fixture(autouse=True)
def _no_env_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAKONG_PASSPHRASE", raising=False)


@pytest.fixture
def key() -> PrivateKey:
    return PrivateKey.from_seed(bytes(range(32)))


@pytest.fixture
def store(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path)


def _save_fast(store: Keystore, key: PrivateKey, account: str = ALICE) -> Path:
    return store.save(account, key, PASS, params=DEV_SCRYPT)


def _rewrite(path: Path, **changes: Any) -> None:
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def test_basic(store: Keystore, key: PrivateKey, tmp_path: Path) -> None:
    path = _save_fast(store, key)
    assert path == tmp_path / "wallet" / "alice@aba.json" == store.path_of(ALICE)
    assert store.has(ALICE) and not store.has("bob@aba")
    assert store.load(ALICE, PASS) == key
    assert store.list() == [(ALICE, key.public_key)]


def test_file_format(store: Keystore, key: PrivateKey) -> None:
    doc = json.loads(_save_fast(store, key).read_text())
    assert doc["version"] == 1 and doc["account"] == ALICE
    assert doc["public_key"] == key.public_key.hex()
    assert doc["kdf"] == "scrypt" and doc["cipher"] == "chacha20poly1305"
    assert set(doc["kdf_params"]) == {"n", "r", "p", "salt"}
    assert len(bytes.fromhex(doc["nonce"])) == 12
    assert len(bytes.fromhex(doc["ciphertext"])) == 32 + 16


def test_default_params_strong_for_users_fast_for_dev(store: Keystore, key: PrivateKey) -> None:
    user = json.loads(store.save(ALICE, key, PASS).read_text())["kdf_params"]
    dev = json.loads(store.save("bob@aba", key, DEV_PASSPHRASE).read_text())["kdf_params"]
    assert (user["n"], user["r"], user["p"]) == (2**15, USER_SCRYPT.r, USER_SCRYPT.p)
    assert (dev["n"], dev["r"], dev["p"]) == (2**12, DEV_SCRYPT.r, DEV_SCRYPT.p)
    assert store.load(ALICE, PASS) == store.load("bob@aba", DEV_PASSPHRASE) == key


def test_file_and_directory_permissions(store: Keystore, key: PrivateKey) -> None:
    path = _save_fast(store, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_seed_never_on_disk(store: Keystore, key: PrivateKey) -> None:
    raw = _save_fast(store, key).read_bytes()
    for encoding in (
        key.seed,
        key.seed.hex().encode(),
        key.seed.hex().upper().encode(),
        base64.b64encode(key.seed),
    ):
        assert encoding not in raw


def test_not_readable_as_plain_key_file(store: Keystore, key: PrivateKey) -> None:
    with pytest.raises(KeyFileError):
        read_key_file(_save_fast(store, key))


def test_fresh_salt_and_nonce_per_save(store: Keystore, key: PrivateKey) -> None:
    first = json.loads(_save_fast(store, key).read_text())
    second = json.loads(_save_fast(store, key).read_text())
    assert first["kdf_params"]["salt"] != second["kdf_params"]["salt"]
    assert first["nonce"] != second["nonce"]


def test_derived_key_cached_per_process(
    store: Keystore, key: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def counting(**kwargs: Any) -> Scrypt:
        calls.append(kwargs["n"])
        return Scrypt(**kwargs)

    monkeypatch.setattr(keystore_module, "Scrypt", counting)
    _save_fast(store, key)
    assert store.load(ALICE, PASS) == store.load(ALICE, PASS) == key
    assert len(calls) == 1


@settings(max_examples=10, deadline=None)
@given(passphrase=st.text(min_size=1, max_size=40))
def test_any_passphrase_round_trips(
    tmp_path_factory: pytest.TempPathFactory, passphrase: str
) -> None:
    store = Keystore(tmp_path_factory.mktemp("home"))
    key = PrivateKey.generate()
    store.save(ALICE, key, passphrase, params=DEV_SCRYPT)
    assert store.load(ALICE, passphrase) == key


def test_list_sorted_and_skips_wallet_meta(store: Keystore) -> None:
    keys = {a: PrivateKey.generate() for a in ("zed@aba", "admin@nbc", "bob@canadia")}
    for account, key in keys.items():
        _save_fast(store, key, account)
    store.mark_dev_passphrase()
    assert store.list() == [(a, keys[a].public_key) for a in sorted(keys)]


def test_list_empty_home(store: Keystore) -> None:
    assert store.list() == []


def test_dev_passphrase_marker(store: Keystore) -> None:
    assert not store.uses_dev_passphrase()
    store.mark_dev_passphrase()
    assert store.uses_dev_passphrase()
    assert json.loads((store.directory / "wallet.json").read_text()) == {"dev_passphrase": True}


def test_resolve_passphrase_env_first(
    store: Keystore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.mark_dev_passphrase()
    monkeypatch.setenv("BAKONG_PASSPHRASE", PASS)
    assert resolve_passphrase(tmp_path) == PASS


def test_resolve_passphrase_dev_home(store: Keystore, tmp_path: Path) -> None:
    store.mark_dev_passphrase()
    assert resolve_passphrase(tmp_path, confirm=True) == DEV_PASSPHRASE


def test_load_signing_key(
    store: Keystore, key: PrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save_fast(store, key)
    monkeypatch.setenv("BAKONG_PASSPHRASE", PASS)
    assert load_signing_key(tmp_path, ALICE) == key


def test_invalid_wrong_passphrase(store: Keystore, key: PrivateKey) -> None:
    _save_fast(store, key)
    with pytest.raises(KeystoreError) as err:
        store.load(ALICE, PASS + "!")
    assert err.value.code == "wrong_passphrase"
    assert ALICE in err.value.message


@pytest.mark.parametrize(
    "field,value",
    [
        ("public_key", PrivateKey.from_seed(b"\x07" * 32).public_key.hex()),
        ("ciphertext", "00" * 48),
    ],
)
def test_invalid_tampered_file(store: Keystore, key: PrivateKey, field: str, value: str) -> None:
    path = _save_fast(store, key)
    _rewrite(path, **{field: value})
    with pytest.raises(KeystoreError) as err:
        store.load(ALICE, PASS)
    assert err.value.code == "wrong_passphrase"


def test_invalid_key_not_found(store: Keystore, tmp_path: Path) -> None:
    with pytest.raises(KeystoreError) as err:
        store.load(ALICE, PASS)
    assert err.value.code == "key_not_found"
    with pytest.raises(KeystoreError) as err:
        load_signing_key(tmp_path, ALICE)  # fails before prompting: no passphrase is set
    assert err.value.code == "key_not_found"


def test_account_ids_any_case(store: Keystore, key: PrivateKey) -> None:
    """`Alice@aba` is `alice@aba` (issue 14: ids are typed in any case, kept lowercase)."""
    path = store.save("Alice@ABA", key, PASS, params=DEV_SCRYPT)
    assert path.name == "alice@aba.json" and store.has("alice@aba")
    assert store.load("ALICE@aba", PASS) == key


def test_invalid_account_id(store: Keystore, key: PrivateKey) -> None:
    for bad in ("../x@aba", "alice", "a@b", "al ice@aba"):
        with pytest.raises(InvalidId):
            store.save(bad, key, PASS, params=DEV_SCRYPT)
        with pytest.raises(InvalidId):
            store.has(bad)


def test_invalid_file_of_another_account(store: Keystore, key: PrivateKey) -> None:
    path = _save_fast(store, key)
    path.rename(store.path_of("bob@aba"))
    with pytest.raises(KeystoreError) as err:
        store.load("bob@aba", PASS)
    assert err.value.code == "bad_keystore"


CORRUPTIONS: list[dict[str, Any]] = [
    {"version": 2},
    {"version": "1"},
    {"kdf": "pbkdf2"},
    {"cipher": "aes-256-gcm"},
    {"account": "Alice"},
    {"public_key": "abcd"},
    {"public_key": "zz" * 32},
    {"nonce": "00" * 8},
    {"ciphertext": "00" * 32},
    {"kdf_params": {"n": 3000, "r": 8, "p": 1, "salt": "00" * 16}},
    {"kdf_params": {"n": 2**30, "r": 8, "p": 1, "salt": "00" * 16}},
    {"kdf_params": {"n": 4096, "r": 0, "p": 1, "salt": "00" * 16}},
    {"kdf_params": {"n": True, "r": 8, "p": 1, "salt": "00" * 16}},
    {"kdf_params": {"n": 4096, "r": 8, "p": 1}},
    {"kdf_params": [4096, 8, 1]},
]


@pytest.mark.parametrize("change", CORRUPTIONS)
def test_invalid_bad_keystore(store: Keystore, key: PrivateKey, change: dict[str, Any]) -> None:
    path = _save_fast(store, key)
    _rewrite(path, **change)
    with pytest.raises(KeystoreError) as err:
        store.load(ALICE, PASS)
    assert err.value.code == "bad_keystore"
    with pytest.raises(KeystoreError):
        store.list()


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_file_bytes_give_bad_keystore(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    store = Keystore(tmp_path_factory.mktemp("home"))
    store.directory.mkdir()
    store.path_of(ALICE).write_bytes(data)
    with pytest.raises(KeystoreError) as err:
        store.load(ALICE, PASS)
    assert err.value.code == "bad_keystore"


def test_invalid_scrypt_params_on_save(store: Keystore, key: PrivateKey) -> None:
    with pytest.raises(KeystoreError) as err:
        store.save(ALICE, key, PASS, params=ScryptParams(n=1000, r=8, p=1))
    assert err.value.code == "bad_scrypt_params"
    assert not store.has(ALICE)


def test_invalid_corrupt_dev_marker(store: Keystore) -> None:
    store.mark_dev_passphrase()
    (store.directory / "wallet.json").write_text("{not json")
    with pytest.raises(KeystoreError) as err:
        store.uses_dev_passphrase()
    assert err.value.code == "bad_keystore"
