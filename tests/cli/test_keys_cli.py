"""`bakong keys` through click's runner: output shapes, export/import, prompts, errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.keystore import DEV_PASSPHRASE, DEV_SCRYPT, Keystore
from cli.main import cli
from ledger.crypto import PrivateKey
from node.keyfile import read_key_file, write_key_file

PASS = "test passphrase"
ALICE = "alice@aba"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "testnet"


def run(home: Path, *args: str, passphrase: str | None = PASS, stdin: str | None = None) -> Result:
    """Invoke `bakong keys ...` with --home; passphrase None means BAKONG_PASSPHRASE unset."""
    env = {"BAKONG_PASSPHRASE": passphrase, "BAKONG_HOME": None}
    return CliRunner().invoke(cli, ["keys", *args, "--home", str(home)], env=env, input=stdin)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(result: Result, code: str) -> str:
    """Assert the contract: non-zero exit and exactly one line `error: <code>: <message>`."""
    assert result.exit_code != 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and lines[0].startswith(f"error: {code}: "), result.stderr
    assert result.stderr.rstrip().endswith(lines[0])  # after any prompt, nothing follows
    assert "Traceback" not in result.output
    return lines[0]


def seed_key(home: Path, account: str = ALICE, passphrase: str = PASS) -> PrivateKey:
    key = PrivateKey.generate()
    Keystore(home).save(account, key, passphrase, params=DEV_SCRYPT)
    return key


def test_basic(home: Path) -> None:
    created = json.loads(ok(run(home, "new", ALICE, "--json")))
    assert set(created) == {"account", "public_key", "path"}
    assert created["account"] == ALICE
    listed = json.loads(ok(run(home, "list", "--json")))
    assert listed == [{"account": ALICE, "public_key": created["public_key"]}]
    assert json.loads(ok(run(home, "show", ALICE, "--json"))) == created
    key = Keystore(home).load(ALICE, PASS)
    assert key.public_key.hex() == created["public_key"]


def test_list_json_shape_exact(home: Path) -> None:
    keys = {a: seed_key(home, a) for a in ("bob@canadia", "admin@nbc", "alice@aba")}
    listed = json.loads(ok(run(home, "list", "--json", passphrase=None)))
    assert listed == [{"account": a, "public_key": keys[a].public_key.hex()} for a in sorted(keys)]
    assert all(list(row) == ["account", "public_key"] for row in listed)


def test_list_table_for_people(home: Path) -> None:
    key = seed_key(home)
    lines = ok(run(home, "list", passphrase=None)).splitlines()
    assert lines[0].split() == ["ACCOUNT", "PUBLIC", "KEY"]
    assert lines[1].split() == [ALICE, key.public_key.hex()]


def test_list_empty(home: Path) -> None:
    assert json.loads(ok(run(home, "list", "--json"))) == []
    assert "no keys" in ok(run(home, "list"))


def test_show_needs_no_passphrase(home: Path) -> None:
    key = seed_key(home)
    out = ok(run(home, "show", ALICE, passphrase=None))
    assert key.public_key.hex() in out and ALICE in out


def test_home_from_env(home: Path) -> None:
    key = seed_key(home)
    env = {"BAKONG_HOME": str(home), "BAKONG_PASSPHRASE": PASS}
    result = CliRunner().invoke(cli, ["keys", "list", "--json"], env=env)
    assert json.loads(ok(result))[0]["public_key"] == key.public_key.hex()


def test_export_import_seed_hex_round_trip(home: Path) -> None:
    key = seed_key(home)
    result = run(home, "export", ALICE)
    assert ok(result) == key.seed.hex() + "\n"
    assert "secret" in result.stderr
    imported = json.loads(
        ok(run(home, "import", "bob@aba", "--seed-hex", key.seed.hex(), "--json"))
    )
    assert imported["public_key"] == key.public_key.hex()
    assert Keystore(home).load("bob@aba", PASS) == key


def test_export_import_file_round_trip(home: Path, tmp_path: Path) -> None:
    key = seed_key(home)
    out = tmp_path / "alice.key"
    result = run(home, "export", ALICE, "--out", str(out))
    ok(result)
    assert key.seed.hex() not in result.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert read_key_file(out) == key
    ok(run(home, "import", "bob@aba", "--file", str(out)))
    assert Keystore(home).load("bob@aba", PASS) == key


def test_import_seed_from_stdin(home: Path) -> None:
    key = PrivateKey.generate()
    ok(run(home, "import", ALICE, "--seed-hex", "-", stdin=key.seed.hex() + "\n"))
    assert Keystore(home).load(ALICE, PASS) == key


def test_import_node_key_file(home: Path, tmp_path: Path) -> None:
    key = PrivateKey.generate()
    write_key_file(tmp_path / "node.key", key)
    ok(run(home, "import", "admin@aba", "--file", str(tmp_path / "node.key")))
    assert Keystore(home).load("admin@aba", PASS) == key


def test_new_force_replaces(home: Path) -> None:
    old = seed_key(home)
    fails(run(home, "new", ALICE), "key_exists")
    assert Keystore(home).load(ALICE, PASS) == old
    created = json.loads(ok(run(home, "new", ALICE, "--force", "--json")))
    assert created["public_key"] != old.public_key.hex()


def test_prompted_passphrase(home: Path) -> None:
    created = run(home, "new", ALICE, passphrase=None, stdin=f"{PASS}\n{PASS}\n")
    ok(created)
    assert "Repeat for confirmation" in created.stderr
    key = Keystore(home).load(ALICE, PASS)
    exported = run(home, "export", ALICE, passphrase=None, stdin=f"{PASS}\n")
    assert key.seed.hex() in ok(exported)
    fails(run(home, "export", ALICE, passphrase=None, stdin="nope\n"), "wrong_passphrase")


def test_dev_testnet_home_uses_dev_passphrase(home: Path) -> None:
    Keystore(home).mark_dev_passphrase()
    path = Path(json.loads(ok(run(home, "new", ALICE, "--json", passphrase=None)))["path"])
    assert json.loads(path.read_text())["kdf_params"]["n"] == DEV_SCRYPT.n
    assert Keystore(home).load(ALICE, DEV_PASSPHRASE).seed.hex() in ok(
        run(home, "export", ALICE, passphrase=None)
    )


def test_help_documents_the_dev_passphrase(home: Path) -> None:
    assert DEV_PASSPHRASE in ok(CliRunner().invoke(cli, ["keys", "--help"]))


@pytest.mark.parametrize(
    "args",
    [
        ["new", "Alice!@aba"],
        ["show", "alice"],
        ["import", "a@b", "--seed-hex", "00" * 32],
        ["export", "../alice@aba"],
    ],
)
def test_invalid_account_id(home: Path, args: list[str]) -> None:
    fails(run(home, *args), "invalid_id")


@pytest.mark.parametrize("command", ["show", "export"])
def test_invalid_key_not_found(home: Path, command: str) -> None:
    fails(run(home, command, ALICE, passphrase=None), "key_not_found")


def test_invalid_wrong_passphrase(home: Path) -> None:
    seed_key(home)
    line = fails(run(home, "export", ALICE, passphrase="wrong"), "wrong_passphrase")
    assert ALICE in line


def test_invalid_no_passphrase(home: Path) -> None:
    seed_key(home)
    fails(run(home, "export", ALICE, passphrase=None, stdin=""), "no_passphrase")


def test_invalid_bad_keystore(home: Path) -> None:
    seed_key(home)
    Keystore(home).path_of(ALICE).write_text('{"version": 1}')
    fails(run(home, "list", "--json"), "bad_keystore")
    fails(run(home, "export", ALICE), "bad_keystore")


def test_invalid_import_existing(home: Path) -> None:
    old = seed_key(home)
    fails(run(home, "import", ALICE, "--seed-hex", "11" * 32), "key_exists")
    assert Keystore(home).load(ALICE, PASS) == old
    ok(run(home, "import", ALICE, "--seed-hex", "11" * 32, "--force"))
    assert Keystore(home).load(ALICE, PASS).seed == b"\x11" * 32


@pytest.mark.parametrize("seed", ["zz" * 32, "00" * 31, "00" * 33, ""])
def test_invalid_seed_hex(home: Path, seed: str) -> None:
    fails(run(home, "import", ALICE, "--seed-hex", seed), "invalid_seed")
    assert not Keystore(home).has(ALICE)


@pytest.mark.parametrize("args", [[], ["--seed-hex", "00" * 32, "--file", "x.key"]])
def test_invalid_import_needs_one_source(home: Path, args: list[str]) -> None:
    result = run(home, "import", ALICE, *args)
    assert result.exit_code == 2
    assert "exactly one of --seed-hex or --file" in result.stderr


def test_invalid_import_bad_file(home: Path, tmp_path: Path) -> None:
    (tmp_path / "junk.key").write_text("not a key")
    fails(run(home, "import", ALICE, "--file", str(tmp_path / "junk.key")), "bad_key_file")
    fails(run(home, "import", ALICE, "--file", str(tmp_path / "none.key")), "key_not_found")


def test_invalid_import_keystore_as_plain_file(home: Path) -> None:
    seed_key(home)
    keystore_file = Keystore(home).path_of(ALICE)
    fails(run(home, "import", "bob@aba", "--file", str(keystore_file)), "bad_key_file")


def test_invalid_export_out_exists(home: Path, tmp_path: Path) -> None:
    key = seed_key(home)
    out = tmp_path / "alice.key"
    out.write_text("keep me")
    fails(run(home, "export", ALICE, "--out", str(out)), "file_exists")
    assert out.read_text() == "keep me"
    ok(run(home, "export", ALICE, "--out", str(out), "--force"))
    assert read_key_file(out) == key


def test_real_process_prints_one_error_line(home: Path) -> None:
    env = {**os.environ, "BAKONG_HOME": str(home), "BAKONG_PASSPHRASE": PASS}
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "keys", "export", ALICE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: key_not_found: no key for {ALICE} in {home}/wallet"
    ]
