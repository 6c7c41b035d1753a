"""`bakong testnet bundle --out DIR`: one folder per node with its home and nothing of
the other nodes' secrets, exact modes, a systemd unit and a compose file that validate,
and a round trip: a `--hosts` testnet on loopback aliases (127.0.0.0/8 is all this
machine's on Linux), bundled, whose bundled homes, started with `bakong node run`, form
the network and commit a transfer. Every process started here is killed, also on failure.
"""

from __future__ import annotations

import configparser
import json
import os
import random
import re
import shutil
import ssl
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from cli.devnet import testnet as tn
from cli.devnet.processes import spawn_detached, terminate_all
from cli.main import cli
from node.config import load_config, render_config
from tests.cli.conftest import FAST
from tests.cli.devnet.bundle_checks import check_transfer_commits, wait_bundle_ready

REPO = Path(__file__).resolve().parents[3]
HOSTS = ["10.10.0.1", "10.10.0.2", "node-c.example.com", "fd00:10::4", "10.10.0.5"]
NAMES = ["nbc", "aclb", "aba", "wing", "canadia"]
ENV: dict[str, str | None] = {"BAKONG_HOME": None, "BAKONG_PASSPHRASE": None, "BAKONG_NODE": None}


def run(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={**ENV, **(env or {})})


def ok(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    result = run(*args, env=env)
    assert result.exit_code == 0, (args, result.output)
    return result


def fails(code: str, *args: str) -> str:
    result = run(*args)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {code}: "), result.stderr
    return lines[0]


def make_home(tmp: Path, *flags: str) -> Path:
    home = tmp / "net"
    ok("testnet", "init", "--home", str(home), "--hosts", ",".join(HOSTS), *flags)
    return home


@pytest.fixture(scope="module")
def tls_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A --hosts --tls testnet home (wallet included) and its bundle."""
    tmp = tmp_path_factory.mktemp("bundle")
    home = make_home(tmp, "--tls")
    out = tmp / "out"
    result = ok("testnet", "bundle", "--home", str(home), "--out", str(out))
    for name, host in zip(NAMES, HOSTS, strict=True):
        assert f"{name}: {out / name} (for {host};" in result.stdout
    return home, out


# ---------------------------------------------------------------------------------------
# contents


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_layout(tls_bundle: tuple[Path, Path]) -> None:
    home, out = tls_bundle
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*NAMES, "README.md", "bundle.json", "ca.crt"]
    )
    for name in NAMES:
        folder = out / name
        top = {p.name for p in folder.iterdir()}
        assert top == {
            "README.md", f"bakong-{name}.service", "compose.yaml", "Containerfile",
            "Dockerfile", ".dockerignore", ".containerignore", "ca.crt", "home", "src",
        }  # fmt: skip
        # exactly what `bakong node run --home` reads: no data, logs, pid file or wallet
        assert files_under(folder / "home") == {
            "node.toml", "genesis.json", "node_key.json", "operator_key.json",
            "tls/node.crt", "tls/node.key",
        }  # fmt: skip
        assert (folder / "Dockerfile").is_symlink()
        assert os.readlink(folder / "Dockerfile") == "Containerfile"
        assert (folder / "ca.crt").read_bytes() == tn.get_ca_path(home).read_bytes()
    assert (out / "ca.crt").read_bytes() == tn.get_ca_path(home).read_bytes()
    doc = json.loads((out / "bundle.json").read_text())
    assert doc["chain_id"] == "bakong-testnet" and doc["tls"] is True
    assert [(n["name"], n["host"], n["p2p_port"], n["http_port"]) for n in doc["nodes"]] == [
        (name, host, 26600, 26601) for name, host in zip(NAMES, HOSTS, strict=True)
    ]


def test_bundled_home_is_the_node(tls_bundle: tuple[Path, Path]) -> None:
    """Same keys, genesis (byte for byte), token, addresses and peers as the node of the
    testnet home; only the file names are the bundle's own."""
    home, out = tls_bundle
    genesis = (home / tn.GENESIS_FILE).read_bytes()
    for node in tn.load_manifest(home).nodes:
        source = load_config(tn.get_node_dir(home, node) / tn.CONFIG_FILE)
        bundled = load_config(out / node.name / "home" / tn.CONFIG_FILE)
        assert bundled.genesis == "genesis.json"
        assert bundled.genesis_path.read_bytes() == genesis
        assert bundled.node_key_path.read_bytes() == source.node_key_path.read_bytes()
        assert bundled.operator_key_path is not None and source.operator_key_path is not None
        assert bundled.operator_key_path.read_bytes() == source.operator_key_path.read_bytes()
        assert bundled.tls_cert_path is not None and source.tls_cert_path is not None
        assert bundled.tls_cert_path.read_bytes() == source.tls_cert_path.read_bytes()
        assert bundled.tls_key_path is not None and source.tls_key_path is not None
        assert bundled.tls_key_path.read_bytes() == source.tls_key_path.read_bytes()
        expected_http = replace(source.http, tls_cert="tls/node.crt", tls_key="tls/node.key")
        assert (bundled.api_token, bundled.http, bundled.p2p, bundled.consensus) == (
            source.api_token, expected_http, source.p2p, source.consensus,
        )  # fmt: skip
        assert bundled.data_path == bundled.home / "data"
        # every path resolves inside the bundled home
        for path in (bundled.genesis_path, bundled.node_key_path, bundled.log_path):
            assert path.resolve().is_relative_to((out / node.name / "home").resolve())


@dataclass
class Secrets:
    by_node: dict[str, list[str]]
    shared: list[str]  # the CA key and the wallet: in no bundle at all


def read_secrets(home: Path) -> Secrets:
    by_node: dict[str, list[str]] = {}
    for node in tn.load_manifest(home).nodes:
        config = load_config(tn.get_node_dir(home, node) / tn.CONFIG_FILE)
        assert config.operator_key_path is not None and config.tls_key_path is not None
        seeds = [
            json.loads(p.read_text())["seed"]
            for p in (config.node_key_path, config.operator_key_path)
        ]
        by_node[node.name] = [*seeds, config.api_token, pem_body(config.tls_key_path)]
    shared = [pem_body(home / "tls" / "ca.key")]
    shared += [
        json.loads(p.read_text())["ciphertext"] for p in (home / "wallet").glob("admin@*.json")
    ]
    assert len(shared) == 1 + len(by_node)
    return Secrets(by_node, shared)


def pem_body(path: Path) -> str:
    """The base64 of a PEM key, on one line (what a copy would contain)."""
    return "".join(line for line in path.read_text().splitlines() if not line.startswith("-"))


def contents(root: Path) -> dict[Path, str]:
    """Every file under `root` as text, with newlines dropped (PEM bodies span lines)."""
    return {
        p: p.read_bytes().decode(errors="replace").replace("\n", "")
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def test_no_foreign_secrets(tls_bundle: tuple[Path, Path]) -> None:
    home, out = tls_bundle
    secrets = read_secrets(home)
    everything = contents(out)
    for name, own in secrets.by_node.items():
        folder = out / name
        for path, text in everything.items():
            inside_home = path.is_relative_to(folder / "home")
            for secret in own:
                # a node's secrets are in its own home only
                assert (secret in text) <= inside_home, (name, path)
            for secret in secrets.shared:
                assert secret not in text, path
        # and they are there (the check above is not vacuous)
        home_text = "".join(t for p, t in everything.items() if p.is_relative_to(folder / "home"))
        assert all(secret in home_text for secret in own)
    assert not [p for p in out.rglob("*") if p.name in ("wallet", "ca.key", "wallet.json")]


def test_modes(tls_bundle: tuple[Path, Path]) -> None:
    _, out = tls_bundle
    secret_names = {"node.toml", "node_key.json", "operator_key.json", "node.key"}
    seen_secrets = 0
    for path in [out, *out.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o700, path
        elif path.name in secret_names and path.parent.name in ("home", "tls"):
            assert mode == 0o600, path
            seen_secrets += 1
        else:
            assert mode == 0o644, path
    assert seen_secrets == 4 * len(NAMES)


def test_modes_whatever_the_umask(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    old = os.umask(0o077)
    try:
        ok("testnet", "bundle", "--home", str(home), "--out", str(tmp_path / "out"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out" / "nbc" / "compose.yaml").stat().st_mode) == 0o644


def parse_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True, comment_prefixes=("#",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(path.read_text())
    return unit


def test_systemd_unit(tls_bundle: tuple[Path, Path]) -> None:
    _, out = tls_bundle
    for name, host in zip(NAMES, HOSTS, strict=True):
        unit = parse_unit(out / name / f"bakong-{name}.service")
        service = unit["Service"]
        assert (
            service["ExecStart"] == f"/opt/bakong/bin/bakong node run --home /var/lib/bakong/{name}"
        )
        assert service["User"] == "bakong" and service["Group"] == "bakong"
        assert service["Restart"] == "on-failure"
        assert service["NoNewPrivileges"] == "yes"
        assert service["ProtectSystem"] == "strict"
        assert service["ReadWritePaths"] == f"/var/lib/bakong/{name}"
        assert service["StateDirectory"] == f"bakong/{name}"
        assert service["PrivateTmp"] == "yes"
        assert service["ProtectHome"] == "yes"
        assert service["CapabilityBoundingSet"] == ""
        assert unit["Unit"]["After"] == "network-online.target"
        assert unit["Install"]["WantedBy"] == "multi-user.target"
        assert host in (out / name / f"bakong-{name}.service").read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_unit_verifies(tls_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    """systemd's own parser: no unknown key, no bad value. The unit's bakong is installed
    on the target host only, so this copy points ExecStart at the one running here."""

    def verify(text: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "bakong-nbc.service"
        path.write_text(
            text.replace("/opt/bakong/bin/bakong", shutil.which("bakong") or sys.executable)
        )
        return subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    _, out = tls_bundle
    text = (out / "nbc" / "bakong-nbc.service").read_text()
    result = verify(text)
    assert result.returncode == 0 and str(tmp_path) not in result.stdout + result.stderr, result
    # a planted mistake is reported: the check is not vacuous
    broken = verify(text.replace("PrivateTmp=yes", "PrivateTmp=perhaps\nNoSuchKey=1"))
    assert "NoSuchKey" in broken.stdout + broken.stderr


# ---------------------------------------------------------------------------------------
# compose

SERVICE_KEYS = {
    "build", "image", "container_name", "command", "entrypoint", "network_mode", "expose",
    "ports", "volumes", "user", "restart", "init", "read_only", "tmpfs", "cap_drop",
    "cap_add", "security_opt", "stop_signal", "stop_grace_period", "environment",
    "healthcheck", "logging", "ulimits", "working_dir",
}  # fmt: skip
DURATION = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")


def check_compose(doc: Any, folder: Path) -> list[str]:
    """The essentials of the Compose Specification that our file uses, as a small checker
    for machines without docker-compose; returns the problems."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        return ["not a mapping"]
    for key in doc:
        if key not in {"services", "volumes", "networks", "configs", "secrets"} and not str(
            key
        ).startswith("x-"):
            problems.append(f"top-level {key!r}")
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        return [*problems, "no services"]
    for name, service in services.items():
        if not isinstance(service, dict):
            problems.append(f"{name}: not a mapping")
            continue
        problems += [f"{name}.{k}: unknown" for k in service if k not in SERVICE_KEYS]
        build = service.get("build", {})
        context = folder / build.get("context", ".")
        if not (context / build.get("dockerfile", "Dockerfile")).is_file():
            problems.append(f"{name}.build: no Containerfile")
        for key in ("command", "entrypoint", "cap_drop", "security_opt", "tmpfs"):
            value = service.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{name}.{key}: not a list of strings")
        expose = service.get("expose", [])
        if not all(isinstance(p, str | int) and str(p).isdigit() for p in expose):
            problems.append(f"{name}.expose: bad port")
        for volume in service.get("volumes", []):
            if not isinstance(volume, dict) or volume.get("type") not in ("bind", "volume"):
                problems.append(f"{name}.volumes: bad entry {volume!r}")
            elif volume["type"] == "bind" and not (folder / volume["source"]).is_dir():
                problems.append(f"{name}.volumes: no {volume['source']}")
            elif not str(volume.get("target", "")).startswith("/"):
                problems.append(f"{name}.volumes: target not absolute")
        restart = service.get("restart", "no")
        if not re.fullmatch(r"no|always|unless-stopped|on-failure(:\d+)?", str(restart)):
            problems.append(f"{name}.restart: {restart!r}")
        for key in ("init", "read_only"):
            if key in service and not isinstance(service[key], bool):
                problems.append(f"{name}.{key}: not a boolean")
        if not DURATION.match(str(service.get("stop_grace_period", "10s"))):
            problems.append(f"{name}.stop_grace_period: not a duration")
    return problems


def test_compose_structure(tls_bundle: tuple[Path, Path]) -> None:
    _, out = tls_bundle
    for name in NAMES:
        folder = out / name
        doc = yaml.safe_load((folder / "compose.yaml").read_text())
        assert check_compose(doc, folder) == []
        assert list(doc["services"]) == [name]
        service = doc["services"][name]
        assert service["build"] == {"context": ".", "dockerfile": "Containerfile"}
        assert service["command"] == ["node", "run", "--home", f"/var/lib/bakong/{name}"]
        assert service["network_mode"] == "host"
        assert service["expose"] == ["26600", "26601"]
        assert service["volumes"] == [
            {"type": "bind", "source": "./home", "target": f"/var/lib/bakong/{name}"}
        ]
        assert service["restart"] == "on-failure"
    # the checker catches a planted mistake
    broken = {"services": {"x": {"imagee": "a", "restart": "sometimes", "volumes": ["a:b"]}}}
    assert len(check_compose(broken, out / "nbc")) >= 3


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (Debian's package: apt-get install "
    "--no-install-recommends docker-compose; scripts/test installs it as root)",
)
def test_compose_validates_with_docker_compose(tls_bundle: tuple[Path, Path]) -> None:
    def config(folder: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker-compose", "--project-directory", str(folder), "-f",
             str(folder / "compose.yaml"), "config"],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "DOCKER_HOST": "unix:///nonexistent"},
        )  # fmt: skip

    _, out = tls_bundle
    for name in NAMES:
        result = config(out / name)
        assert result.returncode == 0, result.stderr
        resolved = yaml.safe_load(result.stdout)["services"][name]
        # relative paths resolve into the node's folder
        assert resolved["build"]["context"] == str(out / name)
        assert resolved["volumes"][0]["source"] == str(out / name / "home")
    # docker-compose does validate: a planted unknown key fails
    bad = out.parent / "bad-compose"
    shutil.copytree(out / "nbc", bad, symlinks=True)
    text = (bad / "compose.yaml").read_text().replace("    init: true\n", "    initt: true\n")
    (bad / "compose.yaml").write_text(text)
    result = config(bad)
    assert result.returncode != 0 and "initt" in result.stderr


def test_containerfile(tls_bundle: tuple[Path, Path]) -> None:
    _, out = tls_bundle
    text = (out / "aba" / "Containerfile").read_text()
    assert "COPY src/ " in text and "RUN pip install " in text
    assert "EXPOSE 26600/tcp 26601/tcp" in text
    assert 'CMD ["node", "run", "--home", "/var/lib/bakong/aba"]' in text
    assert "USER 10001:10001" in text
    # the node's secrets stay out of the build context sent to the builder
    for ignore in (".dockerignore", ".containerignore"):
        assert "home" in (out / "aba" / ignore).read_text().split()


def test_source_is_the_package(tls_bundle: tuple[Path, Path]) -> None:
    _, out = tls_bundle
    src = out / "nbc" / "src"
    assert (src / "pyproject.toml").read_bytes() == (REPO / "pyproject.toml").read_bytes()
    expected = {
        str(p.relative_to(REPO))
        for package in ("ledger", "consensus", "node", "cli", "genesis")
        for p in (REPO / package).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert {f for f in files_under(src) if f.endswith(".py")} == expected
    assert not [f for f in files_under(src) if "__pycache__" in f or f.endswith(".pyc")]
    assert not (src / "tests").exists()


def test_source_builds_a_wheel(tls_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    """`pip install .` of src/ works: pip builds the wheel it would install."""
    _, out = tls_bundle
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path),
         str(out / "nbc" / "src")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if result.returncode != 0 and "No matching distribution found" in result.stderr:
        pytest.skip(f"pip cannot fetch the build backend here: {result.stderr.strip()[-200:]}")
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("bakong_sim-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "cli/main.py" in names and "node/main.py" in names and "ledger/tx.py" in names


def test_readmes(tls_bundle: tuple[Path, Path]) -> None:
    _, out = tls_bundle
    top = (out / "README.md").read_text()
    for name, host in zip(NAMES, HOSTS, strict=True):
        assert f"| {name} |" in top and host in top
        text = (out / name / "README.md").read_text()
        assert (
            f"systemctl daemon-reload && sudo systemctl enable --now bakong-{name}.service" in text
        )
        assert "docker compose up -d --build" in text
        assert f"/var/lib/bakong/{name}" in text and "pip install ./src" in text
    assert (
        "curl --cacert ca.crt https://[fd00:10::4]:26601/v1/status"
        in (out / "wing" / "README.md").read_text()
    )


# ---------------------------------------------------------------------------------------
# errors and --force


def test_out_not_empty_needs_force(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    out = tmp_path / "out"
    ok("testnet", "bundle", "--home", str(home), "--out", str(out))
    (out / "nbc" / "stale").write_text("x")
    line = fails("bundle_exists", "testnet", "bundle", "--home", str(home), "--out", str(out))
    assert "--force" in line
    assert (out / "nbc" / "stale").exists()
    ok("testnet", "bundle", "--home", str(home), "--out", str(out), "--force")
    assert not (out / "nbc" / "stale").exists()
    assert (out / "nbc" / "home" / "node.toml").is_file()
    # no staging folder left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net", "out"]


def test_empty_out_is_fine(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    (tmp_path / "out").mkdir()
    ok("testnet", "bundle", "--home", str(home), "--out", str(tmp_path / "out"))
    assert (tmp_path / "out" / "bundle.json").is_file()


def test_force_replaces_only_a_bundle(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.txt").write_text("years of work")
    line = fails(
        "not_a_bundle", "testnet", "bundle", "--home", str(home), "--out", str(out), "--force"
    )
    assert "refusing" in line
    assert (out / "thesis.txt").read_text() == "years of work"


def test_out_errors(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("")
    fails("bundle_exists", "testnet", "bundle", "--home", str(home), "--out", str(afile))
    fails("bad_out", "testnet", "bundle", "--home", str(home), "--out", str(tmp_path), "--force")
    fails("bad_out", "testnet", "bundle", "--home", str(home), "--out", str(home), "--force")
    fails("testnet_not_found", "testnet", "bundle", "--home", str(tmp_path / "no"), "--out", "x")
    line = fails(
        "no_source_tree", "testnet", "bundle", "--home", str(home),
        "--out", str(tmp_path / "o"), "--source", str(tmp_path),
    )  # fmt: skip
    assert "--source" in line
    assert not (tmp_path / "o").exists()


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    (home / "nodes" / "wing" / "operator_key.json").unlink()
    line = fails(
        "bundle_error", "testnet", "bundle", "--home", str(home), "--out", str(tmp_path / "out")
    )
    assert "operator_key.json" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net"]


def test_local_testnet_bundle_warns(tmp_path: Path) -> None:
    home = tmp_path / "net"
    tn.init_testnet(home, validators=1, observers=0, hosts=None, base_port=_free_base())
    result = ok("testnet", "bundle", "--home", str(home), "--out", str(tmp_path / "out"))
    assert "warning: every node listens on 127.0.0.1" in result.stderr
    assert "Every node listens on 127.0.0.1" in (tmp_path / "out" / "README.md").read_text()


def test_help() -> None:
    text = " ".join(ok("testnet", "bundle", "--help").output.split())
    assert "--out" in text and "--force" in text and "systemd" in text and "compose.yaml" in text


def _free_base() -> int:
    from tests.node.netutil import find_free_base

    return find_free_base(2)


# ---------------------------------------------------------------------------------------
# round trip on loopback aliases

NODE_START_S = 60.0


def loopback_hosts(count: int) -> list[str]:
    """`count` addresses of a random 127.a.b.0/24 (every 127/8 address is local on
    Linux), so parallel runs and other tests' 127.0.0.1 stay apart."""
    a, b = random.randrange(1, 255), random.randrange(1, 255)
    return [f"127.{a}.{b}.{11 + i}" for i in range(count)]


def init_on_loopback(home: Path) -> tn.Manifest:
    from cli.testnet import write_wallet

    for attempt in range(10):
        try:
            return tn.init_testnet(
                home,
                hosts=loopback_hosts(5),
                base_port=random.randrange(12_000, 32_000, 2),
                consensus=FAST,
                tls=True,
                wallet=write_wallet,
                force=attempt > 0,
            )
        except tn.TestnetError as exc:
            if exc.code != "port_in_use":
                raise
    raise AssertionError("no free ports on the loopback aliases")


class Nodes:
    """The bundled nodes' processes: started detached, always stopped."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}

    def start(self, name: str, home: Path) -> None:
        command = [sys.executable, "-m", "cli.main", "node", "run", "--home", str(home)]
        self.pids[name] = spawn_detached(command, home.parent / "node.out")

    def stop(self) -> None:
        outcomes = terminate_all(self.pids, grace=10.0, kill_wait=5.0)
        assert "survived" not in outcomes.values(), outcomes


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    started = Nodes()
    try:
        yield started
    finally:
        started.stop()


def test_round_trip_on_loopback_aliases(tmp_path: Path, nodes: Nodes) -> None:
    home = tmp_path / "net"
    manifest = init_on_loopback(home)
    out = tmp_path / "bundle"
    ok("testnet", "bundle", "--home", str(home), "--out", str(out))
    # the CA's certificate from the bundle verifies every node at its own address
    context = ssl.create_default_context(cafile=str(out / "ca.crt"))
    for node in manifest.nodes:
        bundled = out / node.name / "home"
        assert render_config(load_config(bundled / "node.toml"))  # a home node run can read
        nodes.start(node.name, bundled)
    wait_bundle_ready(manifest, nodes.pids, out, context, NODE_START_S)
    env = {"BAKONG_HOME": str(home)}
    check_transfer_commits(manifest, context, lambda *args: ok(*args, env=env).stdout)
    # the nodes ran from the bundle: their stores are there, none in the testnet home
    for node in manifest.nodes:
        assert (out / node.name / "home" / "data").is_dir()
        assert not (tn.get_node_dir(home, node) / "data").exists()
