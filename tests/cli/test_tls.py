"""HTTPS for the node API (`testnet init --tls`): the CA and the nodes' certificates, a
real TLS testnet (one for the module, always stopped) that the CLI, the bench's client
and curl reach through the testnet's CA, and clients that do not trust it refused."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from cli import http
from cli.devnet import testnet as tn
from cli.devnet import tls
from cli.http import AsyncHttp, TlsUntrusted
from cli.main import cli
from cli.testnet import write_wallet
from node.config import load_config
from tests.cli.conftest import FAST, Net
from tests.node.netutil import find_free_base, init_on_free_ports

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.datetime.now(datetime.UTC)
LOCALHOST = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))


class TlsNet(Net):
    @property
    def env(self) -> dict[str, str | None]:
        # whatever trust the caller's environment names must not decide these tests
        return super().env | {"BAKONG_CACERT": None}

    @property
    def ca(self) -> Path:
        return tn.get_ca_path(self.home)

    @property
    def port(self) -> int:
        return self.manifest.nodes[0].http_port


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNet]:
    home = tmp_path_factory.mktemp("tls-net") / "testnet"
    manifest = init_on_free_ports(
        home, validators=2, observers=0, consensus=FAST, wallet=write_wallet, tls=True
    )
    try:
        tn.up_testnet(home, timeout=90)
        yield TlsNet(home, manifest)
    finally:
        tn.down_testnet(home)


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    """The certificate of a CA that signed none of the nodes' certificates."""
    path = tmp_path / "other-ca.crt"
    tls.write_certificate(path, tls.make_ca("someone else's CA", NOW).cert)
    return path


@pytest.fixture
def trust_reset() -> Iterator[None]:
    """Tests that set cli.http's trust directly start and leave it without a choice."""
    http.use_ca_file(None)
    http.use_testnet_ca(None)
    yield
    http.use_ca_file(None)
    http.use_testnet_ca(None)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------------------------
# certificates (no node)


def test_ca_certificate() -> None:
    ca = tls.make_ca("test CA", NOW).cert
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert ca.issuer == ca.subject
    assert ca.not_valid_before_utc < NOW < ca.not_valid_after_utc


def test_node_certificate_verifies_for_its_hosts() -> None:
    ca = tls.make_ca("test CA", NOW)
    _, cert = tls.make_node_cert(ca, "nbc", ["10.0.0.7", "nbc.bank.test", "127.0.0.1"], NOW)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # 127.0.0.1 and localhost always, each name once, IPs as IPs
    assert list(names) == [
        LOCALHOST,
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.7")),
        x509.DNSName("nbc.bank.test"),
    ]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.not_valid_after_utc - NOW <= tls.NODE_VALIDITY
    # the strict (web PKI) verifier of cryptography accepts the chain for every name
    store = Store([ca.cert])
    for name in (*names, x509.DNSName("nbc.bank.test")):
        verifier = PolicyBuilder().store(store).time(NOW).build_server_verifier(name)
        assert verifier.verify(cert, []) == [cert, ca.cert]


def test_node_certificate_of_another_ca_does_not_verify() -> None:
    _, cert = tls.make_node_cert(tls.make_ca("a", NOW), "nbc", [], NOW)
    verifier = (
        PolicyBuilder()
        .store(Store([tls.make_ca("b", NOW).cert]))
        .time(NOW)
        .build_server_verifier(LOCALHOST)
    )
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(cert, [])


def test_init_tls_layout_and_output(tmp_path: Path) -> None:
    home = tmp_path / "testnet"
    base = str(find_free_base(4))
    args = ["init", "--tls", "--home", str(home), "--validators", "1", "--observers", "1"]
    result = CliRunner().invoke(
        cli, ["testnet", *args, "--base-port", base], env={"BAKONG_HOME": None}
    )
    assert result.exit_code == 0, result.output
    ca_path = tn.get_ca_path(home)
    # how to trust the CA: the CLI, Python/OpenSSL and curl
    assert f"--cacert {ca_path.absolute()}" in result.stdout
    assert f"export SSL_CERT_FILE={ca_path.absolute()}" in result.stdout
    manifest = tn.load_manifest(home)
    assert f"curl --cacert {ca_path.absolute()} {manifest.nodes[0].http_url}" in result.stdout
    assert mode(home / tn.TLS_DIR / tn.CA_KEY_FILE) == 0o600
    ca = load_cert(ca_path)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for node in manifest.nodes:
        assert node.http_url == f"https://127.0.0.1:{node.http_port}"
        node_dir = tn.get_node_dir(home, node)
        config = load_config(node_dir / tn.CONFIG_FILE)
        assert (config.http.tls_cert, config.http.tls_key) == ("tls/node.crt", "tls/node.key")
        assert config.http_url == node.http_url
        assert config.tls_key_path is not None and mode(config.tls_key_path) == 0o600
        assert config.tls_cert_path is not None
        cert = load_cert(config.tls_cert_path)
        verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(LOCALHOST)
        verifier.verify(cert, [])


def test_init_without_tls_stays_plain(tmp_path: Path) -> None:
    home = tmp_path / "testnet"
    tn.init_testnet(home, validators=1, observers=0, base_port=find_free_base(2))
    node = tn.load_manifest(home).nodes[0]
    assert node.http_url.startswith("http://")
    assert not tn.get_ca_path(home).exists()
    assert not load_config(tn.get_node_dir(home, node) / tn.CONFIG_FILE).http.tls


def test_help_mentions_tls_and_cacert() -> None:
    init_help = CliRunner().invoke(cli, ["testnet", "init", "--help"]).output
    assert "--tls" in init_help and "HTTPS" in init_help
    assert "--cacert FILE" in CliRunner().invoke(cli, ["--help"]).output


# ---------------------------------------------------------------------------------------
# a real TLS testnet


def test_serves_https_to_who_trusts_the_ca(net: TlsNet) -> None:
    context = ssl.create_default_context(cafile=net.ca)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    for host in ("127.0.0.1", "localhost"):
        with opener.open(f"https://{host}:{net.port}/v1/status", timeout=10) as response:
            assert json.loads(response.read())["chain_id"] == net.manifest.chain_id
    with (
        socket.create_connection(("127.0.0.1", net.port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls_sock,
    ):
        assert tls_sock.version() in ("TLSv1.2", "TLSv1.3")


def test_invalid_system_trust_refuses_the_node(net: TlsNet) -> None:
    context = ssl.create_default_context()
    with (
        socket.create_connection(("127.0.0.1", net.port), timeout=10) as sock,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(sock, server_hostname="127.0.0.1")


def test_invalid_plain_http_to_the_tls_port_gets_no_answer(net: TlsNet) -> None:
    received = b""
    with socket.create_connection(("127.0.0.1", net.port), timeout=10) as sock:
        sock.sendall(b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    assert not received.startswith(b"HTTP/")
    assert b"chain_id" not in received
    url = f"http://127.0.0.1:{net.port}"
    net.fails("node_unreachable", "balance", "admin@nbc", "--node", url)


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_curl_with_the_ca(net: TlsNet) -> None:
    url = f"https://127.0.0.1:{net.port}/v1/status"
    curl = ["curl", "-sS", "--noproxy", "*", "--max-time", "10"]
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "CURL_CA_BUNDLE")}
    trusted = subprocess.run([*curl, "--cacert", str(net.ca), url], capture_output=True, env=env)
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads(trusted.stdout)["chain_id"] == net.manifest.chain_id
    refused = subprocess.run([*curl, url], capture_output=True, env=env)
    assert refused.returncode == 60, refused.stderr  # peer certificate cannot be verified


def test_cli_against_the_tls_testnet(net: TlsNet) -> None:
    assert "testnet is up" in net.ok("testnet", "up", "--timeout", "30")  # idempotent
    status = net.ok_json("testnet", "status")
    assert all(n["running"] and isinstance(n["height"], int) for n in status["nodes"])
    assert all(n["url"].startswith("https://127.0.0.1:") for n in status["nodes"])
    issued = net.ok_json("issue", "--to", "admin@aclb", "--asset", "USD", "--amount", "100.00")
    assert issued["status"] == "committed", issued
    customer = net.new_customer("aclb")
    net.fund(customer, "USD", "12.50")
    assert net.balance(customer, "USD") == "12.50"


def test_invalid_cli_with_another_ca(net: TlsNet, other_ca: Path) -> None:
    line = net.fails("tls_untrusted", "--cacert", str(other_ca), "balance", "admin@nbc")
    assert f"https://127.0.0.1:{net.port}/" in line and "certificate verify failed" in line
    assert f"--cacert {other_ca}" in line
    # from the environment, and for the testnet manager's status too
    result = CliRunner().invoke(
        cli, ["testnet", "status", "--json"], env=net.env | {"BAKONG_CACERT": str(other_ca)}
    )
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: tls_untrusted: ")


def test_cacert_comes_before_the_environment(net: TlsNet, other_ca: Path) -> None:
    env = net.env | {"BAKONG_CACERT": str(other_ca)}
    args = ["--cacert", str(net.ca), "balance", "admin@nbc", "--json"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["account"] == "admin@nbc"


def test_node_flag_outside_the_testnet_home(net: TlsNet, tmp_path: Path) -> None:
    """--node with a home that is not the testnet's: the system's trust, unless --cacert
    or BAKONG_CACERT name the CA."""
    args = ["balance", "admin@nbc", "--home", str(tmp_path), "--node", net.url("nbc")]
    net.fails("tls_untrusted", *args)
    assert net.ok_json("--cacert", str(net.ca), *args)["account"] == "admin@nbc"
    env = net.env | {"BAKONG_CACERT": str(net.ca)}
    result = CliRunner().invoke(cli, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output


def test_invalid_cacert_not_a_certificate(net: TlsNet, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    line = net.fails("bad_cacert", "--cacert", str(junk), "balance", "admin@nbc")
    assert str(junk) in line
    result = CliRunner().invoke(cli, ["--cacert", str(tmp_path / "nope.pem"), "balance", "x@y"])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_async_client(net: TlsNet, other_ca: Path, trust_reset: None) -> None:
    """The bench's transport verifies the same way."""

    async def get_status() -> Any:
        async with AsyncHttp(2, 10.0) as session:
            return await session.get(f"{net.url('aclb')}/v1/status")

    http.use_testnet_ca(net.ca)
    assert asyncio.run(get_status())["chain_id"] == net.manifest.chain_id
    http.use_ca_file(other_ca)
    with pytest.raises(TlsUntrusted) as caught:
        asyncio.run(get_status())
    assert caught.value.code == "tls_untrusted"
    assert "certificate verify failed" in caught.value.message


def test_sync_client_untrusted_is_not_unreachable(
    net: TlsNet, other_ca: Path, trust_reset: None
) -> None:
    """A certificate that does not verify is its own error, not failed over like a node
    that does not answer."""
    http.use_ca_file(other_ca)
    with pytest.raises(TlsUntrusted) as caught:
        http.send("GET", f"{net.url('nbc')}/v1/status", timeout=10)
    assert not isinstance(caught.value, http.NodeUnreachable)


def test_invalid_node_start_without_its_certificate(net: TlsNet, tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    source = tn.get_node_dir(net.home, net.manifest.nodes[0]) / tn.CONFIG_FILE
    config = source.read_text().replace(f"port = {net.port}", f"port = {find_free_base(1)}")
    (node_dir / tn.CONFIG_FILE).write_text(config)  # tls/node.crt is not there
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "node", "run", "--home", str(node_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: tls_config: http.tls_cert: cannot read "), lines[0]
    assert str(node_dir / "tls" / "node.crt") in lines[0]


def test_invalid_up_reports_a_node_without_its_certificate(tmp_path: Path) -> None:
    home = tmp_path / "testnet"
    manifest = init_on_free_ports(home, validators=1, observers=0, tls=True)
    (tn.get_node_dir(home, manifest.nodes[0]) / "tls" / "node.crt").unlink()
    try:
        result = CliRunner().invoke(
            cli,
            ["testnet", "up", "--home", str(home), "--timeout", "30"],
            env={"BAKONG_HOME": None},
        )
    finally:
        tn.down_testnet(home)
    assert result.exit_code != 0
    assert "error: tls_config: http.tls_cert: cannot read " in result.stderr  # the log's tail
    assert result.stderr.strip().splitlines()[-1].startswith("error: testnet_not_ready: ")
