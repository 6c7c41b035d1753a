"""`bakong testnet init --hosts H1,H2,...` and `--hosts-file`: each node listens on its
own host, all on the same two ports, and dials its peers at their hosts; the manifest's
URLs and the TLS certificates name those hosts; every bad input is one `bad_hosts` line.

The hosts are TEST-NET and documentation addresses that this machine does not have (the
port check skips them) unless a test says otherwise; no node is started here (the round
trip on loopback aliases is in test_bundle.py).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509

from cli.devnet import testnet as tn
from cli.main import cli
from node.config import NodeConfig, load_config, parse_peer
from tests.node.netutil import find_free_base

NAMES = ["nbc", "aclb", "aba", "wing", "canadia"]  # validators first, then the observer
HOSTS = ["192.0.2.10", "192.0.2.11", "node-c.example.com", "2001:db8::4", "198.51.100.5"]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"BAKONG_HOME": None, "BAKONG_PASSPHRASE": None})


def fails(code: str, *args: str) -> str:
    result = run(*args)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {code}: "), result.stderr
    return lines[0]


def node_configs(home: Path) -> dict[str, tuple[tn.NodeEntry, NodeConfig]]:
    manifest = tn.load_manifest(home)
    return {
        n.name: (n, load_config(tn.get_node_dir(home, n) / tn.CONFIG_FILE)) for n in manifest.nodes
    }


def san_of(cert_path: Path) -> tuple[list[str], list[str]]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return ips, san.get_values_for_type(x509.DNSName)


# ---------------------------------------------------------------------------------------
# layouts


def test_hosts_layout(tmp_path: Path) -> None:
    home = tmp_path / "net"
    result = run("testnet", "init", "--home", str(home), "--hosts", ",".join(HOSTS))
    assert result.exit_code == 0, result.output
    assert "testnet bundle" in result.stdout  # the next step is said
    manifest = tn.load_manifest(home)
    assert [n.name for n in manifest.nodes] == NAMES
    assert [n.host for n in manifest.nodes] == HOSTS
    assert manifest.base_port == tn.DEFAULT_BASE_PORT
    for node, host in zip(manifest.nodes, HOSTS, strict=True):
        # the same two ports on every host
        assert (node.p2p_port, node.http_port) == (26600, 26601)
        url_host = f"[{host}]" if ":" in host else host
        assert node.http_url == f"http://{url_host}:26601"
        config = load_config(tn.get_node_dir(home, node) / tn.CONFIG_FILE)
        assert (config.http.host, config.http.port) == (host, 26601)
        assert (config.p2p.host, config.p2p.port) == (host, 26600)
        assert config.http_url.startswith("http://")
        # every other node, at its host, and never itself
        peers = [parse_peer(p) for p in config.p2p.peers]
        assert peers == [(h, 26600) for h in HOSTS if h != host]
    raw = json.loads((home / tn.MANIFEST_FILE).read_text())
    assert [n["host"] for n in raw["nodes"]] == HOSTS


def test_hosts_base_port_and_spaces(tmp_path: Path) -> None:
    home = tmp_path / "net"
    hosts = " 192.0.2.1 , 192.0.2.2,192.0.2.3 "
    result = run(
        "testnet", "init", "--home", str(home), "--validators", "2", "--observers", "1",
        "--hosts", hosts, "--base-port", "31000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    configs = node_configs(home)
    assert [n.host for n, _ in configs.values()] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    for node, config in configs.values():
        assert (node.p2p_port, node.http_port) == (31000, 31001)
        assert config.p2p.port == 31000
        assert set(config.p2p.peers) == {
            f"192.0.2.{i}:31000" for i in (1, 2, 3) if f"192.0.2.{i}" != node.host
        }


def test_ipv6_and_names_are_normalised(tmp_path: Path) -> None:
    home = tmp_path / "net"
    manifest = tn.init_testnet(
        home,
        validators=2,
        observers=1,
        hosts=["[2001:DB8:0:0::1]", "Node-B.Example.COM", "2001:db8::3"],
    )
    assert [n.host for n in manifest.nodes] == ["2001:db8::1", "node-b.example.com", "2001:db8::3"]
    assert manifest.nodes[0].http_url == "http://[2001:db8::1]:26601"
    config = load_config(tn.get_node_dir(home, manifest.nodes[1]) / tn.CONFIG_FILE)
    # node.config.parse_peer splits at the last colon: IPv6 peers are written unbracketed
    assert [parse_peer(p) for p in config.p2p.peers] == [
        ("2001:db8::1", 26600),
        ("2001:db8::3", 26600),
    ]


def test_hosts_file(tmp_path: Path) -> None:
    hosts_file = tmp_path / "hosts.txt"
    # any order, comments, blank lines, blanks around '=', bank codes in any case
    hosts_file.write_text(
        "# the observer first\n"
        "canadia = 198.51.100.5   # observer\n"
        "\n"
        "WING=2001:db8::4\n"
        "  aba=node-c.example.com\n"
        "aclb=192.0.2.11\n"
        "nbc=192.0.2.10\n"
    )
    home = tmp_path / "net"
    result = run("testnet", "init", "--home", str(home), "--hosts-file", str(hosts_file))
    assert result.exit_code == 0, result.output
    manifest = tn.load_manifest(home)
    assert [(n.name, n.host) for n in manifest.nodes] == list(zip(NAMES, HOSTS, strict=True))


def test_tls_certificates_name_each_host(tmp_path: Path) -> None:
    home = tmp_path / "net"
    result = run("testnet", "init", "--home", str(home), "--hosts", ",".join(HOSTS), "--tls")
    assert result.exit_code == 0, result.output
    ca = x509.load_pem_x509_certificate(tn.get_ca_path(home).read_bytes())
    for node, config in node_configs(home).values():
        assert node.http_url.startswith("https://")
        cert_path = config.tls_cert_path
        assert cert_path is not None
        ips, names = san_of(cert_path)
        host = node.host
        if ":" in host or host[0].isdigit():
            assert ipaddress.ip_address(host) in {ipaddress.ip_address(ip) for ip in ips}
        else:
            assert host in names
        # no other node's host
        others = {h for h in HOSTS if h != host}
        assert not others & ({str(ipaddress.ip_address(ip)) for ip in ips} | set(names))
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca)


def test_manifest_without_host_reads_as_loopback(tmp_path: Path) -> None:
    """Homes made before --hosts have no `host` in their manifest."""
    home = tmp_path / "net"
    tn.init_testnet(home, validators=1, observers=0, base_port=find_free_base(2))
    raw = json.loads((home / tn.MANIFEST_FILE).read_text())
    for node in raw["nodes"]:
        assert node.pop("host") == "127.0.0.1"
    (home / tn.MANIFEST_FILE).write_text(json.dumps(raw))
    assert [n.host for n in tn.load_manifest(home).nodes] == ["127.0.0.1"]


def test_help_explains_hosts() -> None:
    result = run("testnet", "init", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--hosts H1,H2,..." in text and "--hosts-file" in text
    assert "bank=host" in text and "validators first" in text


# ---------------------------------------------------------------------------------------
# the port check: only on this machine's addresses


def test_remote_hosts_skip_the_port_check(tmp_path: Path) -> None:
    """A port taken on 127.0.0.1 does not matter to nodes on other hosts."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if port > 65534:
            pytest.skip("ephemeral port at the top of the range")
        result = run(
            "testnet", "init", "--home", str(tmp_path / "net"), "--validators", "1",
            "--observers", "0", "--hosts", "192.0.2.1", "--base-port", str(port),
        )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_local_hosts_are_port_checked(tmp_path: Path) -> None:
    """127.0.0.0/8 is this machine's: a port taken on one of its addresses is refused."""
    base = find_free_base(2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.42", base + 1))
        taken.listen()
        line = fails(
            "port_in_use", "testnet", "init", "--home", str(tmp_path / "net"),
            "--validators", "2", "--observers", "0", "--hosts", "127.0.0.41,127.0.0.42",
            "--base-port", str(base),
        )  # fmt: skip
    assert f"port {base + 1} on 127.0.0.42" in line
    assert not (tmp_path / "net").exists()


def test_is_local_address() -> None:
    assert tn.is_local_address("127.0.0.1")
    assert tn.is_local_address("127.3.4.5")
    assert not tn.is_local_address("192.0.2.1")
    assert not tn.is_local_address("node.example.com")


# ---------------------------------------------------------------------------------------
# errors: one line, code bad_hosts, nothing written


@pytest.mark.parametrize(
    ("hosts", "says"),
    [
        ("192.0.2.1,192.0.2.2", "2 hosts for 5 nodes (nbc, aclb, aba, wing, canadia)"),
        ("a.example,b.example,c.example,d.example,e.example,f.example", "6 hosts for 5 nodes"),
        ("192.0.2.1,,192.0.2.3,192.0.2.4,192.0.2.5", "empty entry"),
        ("192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,", "empty entry"),
        ("192.0.2.1,192.0.2.1,192.0.2.3,192.0.2.4,192.0.2.5", "given to both nbc and aclb"),
        ("a.example,b.example,A.EXAMPLE,d.example,e.example", "given to both nbc and aba"),
        ("2001:db8::1,2001:db8:0::1,c,d,e.x", "given to both nbc and aclb"),
        ("192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,1.2.3.999", "'1.2.3.999' is neither"),
        ("192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,bad_name", "'bad_name' is neither"),
        ("192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,-lead.example", "is neither"),
        ("192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,a..b", "is neither"),
        ("192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,host:26600", "is neither"),
        ("192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4,http://x", "is neither"),
        ("192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4," + "a" * 64 + ".example", "is neither"),
        ("192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4," + "a." * 127 + "com", "is neither"),
        ("0.0.0.0,192.0.2.2,192.0.2.3,192.0.2.4,192.0.2.5", "not an address a peer can dial"),
        ("::,192.0.2.2,192.0.2.3,192.0.2.4,192.0.2.5", "not an address a peer can dial"),
        ("224.0.0.1,192.0.2.2,192.0.2.3,192.0.2.4,192.0.2.5", "not an address a peer can dial"),
        ("fe80::1%eth0,192.0.2.2,192.0.2.3,192.0.2.4,192.0.2.5", "zones are not supported"),
    ],
)
def test_bad_hosts(tmp_path: Path, hosts: str, says: str) -> None:
    home = tmp_path / "net"
    line = fails("bad_hosts", "testnet", "init", "--home", str(home), "--hosts", hosts)
    assert says in line
    assert not home.exists()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("nbc=192.0.2.1\naclb=192.0.2.2\naba=192.0.2.3\nwing=192.0.2.4\ncanadia=192.0.2.5\n"
         "foo=192.0.2.6\n", "no node for bank foo in the hosts file; the nodes are nbc, aclb"),
        ("nbc=192.0.2.1\naclb=192.0.2.2\n", "names no host for aba, wing, canadia"),
        ("nbc=192.0.2.1\n# again\nnbc=192.0.2.2\n", ":3: bank nbc is named twice"),
        ("nbc 192.0.2.1\n", ":1: expected bank=host, got 'nbc 192.0.2.1'"),
        ("nbc=\n", ":1: expected bank=host"),
        ("=192.0.2.1\n", ":1: expected bank=host"),
        ("\n\nnbc=1.2.3.999\n", ":3: host '1.2.3.999' is neither"),
        ("", "names no host for nbc, aclb, aba, wing, canadia"),
        ("nbc=192.0.2.1\naclb=192.0.2.1\naba=c.x\nwing=d.x\ncanadia=e.x\n", "given to both"),
    ],
)  # fmt: skip
def test_bad_hosts_file(tmp_path: Path, text: str, says: str) -> None:
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text(text)
    home = tmp_path / "net"
    line = fails(
        "bad_hosts", "testnet", "init", "--home", str(home), "--hosts-file", str(hosts_file)
    )
    assert says in line
    assert not home.exists()


def test_hosts_file_unreadable(tmp_path: Path) -> None:
    line = fails(
        "bad_hosts", "testnet", "init", "--home", str(tmp_path / "net"),
        "--hosts-file", str(tmp_path / "missing"),
    )  # fmt: skip
    assert "cannot read hosts file" in line
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    fails(
        "bad_hosts", "testnet", "init", "--home", str(tmp_path / "net"), "--hosts-file", str(binary)
    )


def test_hosts_and_hosts_file_together(tmp_path: Path) -> None:
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text("nbc=192.0.2.1\n")
    line = fails(
        "bad_hosts", "testnet", "init", "--home", str(tmp_path / "net"), "--validators", "1",
        "--observers", "0", "--hosts", "192.0.2.1", "--hosts-file", str(hosts_file),
    )  # fmt: skip
    assert "not both" in line


def test_bad_hosts_leave_an_existing_testnet_alone(tmp_path: Path) -> None:
    home = tmp_path / "net"
    tn.init_testnet(home, validators=1, observers=0, hosts=["192.0.2.1"])
    before = (home / tn.MANIFEST_FILE).read_text()
    fails("bad_hosts", "testnet", "init", "--home", str(home), "--force", "--hosts", "a,b")
    assert (home / tn.MANIFEST_FILE).read_text() == before


def test_library_rejects_a_bare_string(tmp_path: Path) -> None:
    """hosts="a,b" would otherwise be read as one host per character."""
    with pytest.raises(TypeError):
        tn.init_testnet(tmp_path / "net", validators=1, observers=0, hosts="192.0.2.1")
