"""The local testnet manager: lay out a testnet home, start, watch and stop its nodes.

A home holds a manifest (`testnet.json`), the shared genesis, one folder per node (config,
keys, pid file, logs, data) and a wallet with the operators' keys. Nodes run as detached
processes, so a testnet outlives the command that started it; pid files plus a check of
each process's command line tell our nodes apart from whatever reused a pid since.

    <home>/testnet.json            {"chain_id", "created_at", "base_port", "nodes": [...]}
    <home>/genesis.json
    <home>/nodes/<name>/node.toml, node_key.json, operator_key.json, node.pid, node.out
    <home>/wallet/                 admin@nbc, admin@<bank> under the development passphrase
    <home>/tls/ca.crt, ca.key      with --tls: the testnet's CA (key 0600)
    <home>/nodes/<name>/tls/node.crt, node.key   with --tls: the node's certificate

Node i (validators first, the central bank first of all) listens for P2P on
`base_port + 2i` and for HTTP on `base_port + 2i + 1`, on 127.0.0.1. With `hosts` (one
address per node, in that order: `init --hosts`, `--hosts-file`) node i listens on its
own host instead, every node on the same two ports `base_port` (P2P) and `base_port + 1`
(HTTP), and dials its peers at their hosts: a network across machines (`bundle` packs
each node's home for its machine, see cli/devnet/bundle.py). With `tls` the HTTP API is
HTTPS (the manifest's URLs say https://) with certificates of the home's CA naming each
node's host, which the CLI trusts for this home (`cli.http.use_testnet_ca`, set by
`load_manifest`).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cli import http
from cli.devnet.processes import (
    describe_exit,
    is_process_alive,
    is_process_of,
    spawn_detached,
    terminate_all,
    write_pid_file,
)
from cli.errors import CliError
from cli.http import NodeReplyError, NodeUnreachable
from genesis.builder import BankKeys, build_testnet
from genesis.document import Genesis
from genesis.load import save_genesis_file
from genesis.validation import parse_genesis
from ledger.crypto import PrivateKey
from ledger.ids import AccountId, operator_of
from node.config import ConsensusConfig, HttpConfig, NodeConfig, P2PConfig, render_config
from node.keyfile import write_key_file

if TYPE_CHECKING:
    from cli.devnet.tls import CertificateAuthority

DEFAULT_CHAIN_ID: Final = "bakong-testnet"
DEFAULT_VALIDATORS: Final = 4
DEFAULT_OBSERVERS: Final = 1
DEFAULT_BASE_PORT: Final = 26600
DEFAULT_UP_TIMEOUT_S: Final = 60.0
DEFAULT_DOWN_GRACE_S: Final = 10.0

HOST: Final = "127.0.0.1"
MANIFEST_FILE: Final = "testnet.json"
GENESIS_FILE: Final = "genesis.json"
NODES_DIR: Final = "nodes"
CONFIG_FILE: Final = "node.toml"
NODE_KEY_FILE: Final = "node_key.json"
OPERATOR_KEY_FILE: Final = "operator_key.json"
PID_FILE: Final = "node.pid"
OUT_FILE: Final = "node.out"
LOG_FILE: Final = "node.log"
TLS_DIR: Final = "tls"
CA_CERT_FILE: Final = "ca.crt"
CA_KEY_FILE: Final = "ca.key"
NODE_CERT_FILE: Final = "node.crt"
NODE_KEY_FILE_TLS: Final = "node.key"

_MIN_PORT: Final = 1024
_MAX_PORT: Final = 65535
_POLL_S: Final = 0.2
_STATUS_TIMEOUT_S: Final = 1.0
_KILL_WAIT_S: Final = 5.0
_LOG_TAIL_LINES: Final = 12
# A serving node at least this many blocks below the highest of the others is catching up
# (block sync): 1 or 2 behind is the normal lag of a commit spreading through the network.
CATCHING_UP_BLOCKS: Final = 3
# `up` shows the tails of this many logs: enough to see why, short enough to read.
_LOG_TAIL_FILES: Final = 3


class TestnetError(CliError):
    """A testnet management failure with a stable code (`testnet_exists`, `port_in_use`...)."""

    __test__ = False  # not a pytest test class, despite its name
    code = "testnet_error"


class TestnetNotReady(TestnetError):
    """`up` gave up; `log_tails` holds the last lines of the failing nodes' logs."""

    code = "testnet_not_ready"

    def __init__(self, message: str, log_tails: Sequence[tuple[Path, Sequence[str]]]) -> None:
        super().__init__(message)
        self.log_tails = tuple((path, tuple(lines)) for path, lines in log_tails)


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """One node of the manifest. `dir` is relative to the home, so a home can be moved."""

    name: str
    bank: str
    validator: bool
    dir: str
    http_url: str
    p2p_port: int
    http_port: int
    # the address it listens on and its peers dial (127.0.0.1 unless `init --hosts`)
    host: str = HOST

    @property
    def p2p_address(self) -> str:
        """`host:port` as a peer dials it (`[p2p] peers`; IPv6 unbracketed, as
        node.config.parse_peer splits at the last colon)."""
        return f"{self.host}:{self.p2p_port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bank": self.bank,
            "validator": self.validator,
            "dir": self.dir,
            "http_url": self.http_url,
            "p2p_port": self.p2p_port,
            "http_port": self.http_port,
            "host": self.host,
        }

    @staticmethod
    def from_json(raw: Any) -> NodeEntry:
        return NodeEntry(
            name=_expect(raw["name"], str),
            bank=_expect(raw["bank"], str),
            validator=_expect(raw["validator"], bool),
            dir=_expect(raw["dir"], str),
            http_url=_expect(raw["http_url"], str),
            p2p_port=_expect(raw["p2p_port"], int),
            http_port=_expect(raw["http_port"], int),
            # manifests written before `--hosts` have no host: 127.0.0.1
            host=_expect(raw.get("host", HOST), str),
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """What `init` laid out: the chain, its creation time (ms) and the nodes in port order."""

    chain_id: str
    created_at: int
    base_port: int
    nodes: tuple[NodeEntry, ...]

    @property
    def validator_count(self) -> int:
        return sum(1 for node in self.nodes if node.validator)

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "created_at": self.created_at,
            "base_port": self.base_port,
            "nodes": [node.to_json() for node in self.nodes],
        }

    @staticmethod
    def from_json(raw: Any) -> Manifest:
        return Manifest(
            chain_id=_expect(raw["chain_id"], str),
            created_at=_expect(raw["created_at"], int),
            base_port=_expect(raw["base_port"], int),
            nodes=tuple(NodeEntry.from_json(node) for node in _expect(raw["nodes"], list)),
        )


def _expect(value: Any, kind: type) -> Any:
    # bool is an int subclass: a `true` port must not pass as 1
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value


def get_node_dir(home: Path, node: NodeEntry) -> Path:
    return home / node.dir


def get_ca_path(home: Path) -> Path:
    """The CA certificate of a testnet made with --tls (the file exists only then)."""
    return home / TLS_DIR / CA_CERT_FILE


def load_manifest(home: Path) -> Manifest:
    """The manifest of `home`; `testnet_not_found` when there is no testnet there. Who
    reads it talks to its nodes next: their certificates verify against its CA (unless
    --cacert or BAKONG_CACERT say otherwise)."""
    path = home / MANIFEST_FILE
    http.use_testnet_ca(get_ca_path(home))
    try:
        return Manifest.from_json(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        # run from another folder, ./testnet is not the testnet: say where we looked
        raise TestnetError(
            f"no testnet in {home.absolute()}: pass --home DIR (or set BAKONG_HOME) to use "
            f"another, or create one there with `bakong testnet init --home {home}`",
            "testnet_not_found",
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TestnetError(f"cannot read {path}: {exc}", "bad_manifest") from exc


# ---------------------------------------------------------------------------------------
# init

WalletWriter = Callable[[Path, Mapping[AccountId, PrivateKey]], None]


def init_testnet(
    home: Path,
    *,
    validators: int = DEFAULT_VALIDATORS,
    observers: int = DEFAULT_OBSERVERS,
    base_port: int = DEFAULT_BASE_PORT,
    chain_id: str = DEFAULT_CHAIN_ID,
    consensus: ConsensusConfig | None = None,
    force: bool = False,
    wallet: WalletWriter | None = None,
    now_ms: int | None = None,
    tls: bool = False,
    hosts: Sequence[str] | Mapping[str, str] | None = None,
) -> Manifest:
    """Lay out a fresh testnet in `home`. `force` stops the old one's nodes and wipes it.

    `wallet` writes the operators' keys to the encrypted wallet (the CLI passes
    `cli.testnet.write_wallet`: node/ must not import cli/). `tls`: the nodes serve
    HTTPS with certificates of a CA made for this home (`get_ca_path`). `hosts`: each
    node's address, in node order (validators first, as the manifest lists them) or as
    a mapping bank -> host (`read_hosts_file`); every node then uses the ports
    `base_port` and `base_port + 1` on its host. Bad hosts raise `bad_hosts`.
    """
    # at least one validator, no negative observer count
    if validators < 1 or observers < 0:
        raise TestnetError(
            f"need validators >= 1 and observers >= 0, got {validators} and {observers}",
            "invalid_argument",
        )
    count = validators + observers
    ports = compute_ports(base_port, 1 if hosts is not None else count)
    created_at = now_ms if now_ms is not None else int(time.time() * 1000)
    doc, keys = build_testnet(chain_id, validators, observers, created_at)
    # a bad chain id fails here, before anything on disk changes
    genesis = parse_genesis(doc)
    banks = [(bank.code, bank.validator) for bank in genesis.banks]
    node_hosts = None if hosts is None else assign_hosts(hosts, plan_nodes(banks, base_port))
    _clear_home(home, force)
    # after stopping the old nodes, which held these ports
    if node_hosts is None:
        check_ports_free(ports)
    else:
        check_host_ports_free(node_hosts, ports)
    try:
        manifest = _write_home(
            home,
            genesis,
            keys,
            base_port,
            consensus or ConsensusConfig(),
            tls=tls,
            hosts=node_hosts,
        )
        if wallet is not None:
            wallet(home, {operator_of(bank): k.operator for bank, k in keys.items()})
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise
    return manifest


def compute_ports(base_port: int, node_count: int) -> list[int]:
    """Every port the testnet will use (two per node), checked to be in 1024..65535."""
    last = base_port + 2 * node_count - 1
    # unprivileged and within the port space
    if base_port < _MIN_PORT or last > _MAX_PORT:
        raise TestnetError(
            f"ports {base_port}..{last} are outside {_MIN_PORT}..{_MAX_PORT}", "invalid_port"
        )
    return list(range(base_port, last + 1))


# Ports for throw-away testnets (tests, benchmarks) stay below the kernel's ephemeral
# range (32768+ on Linux): a node dialing its peers takes source ports from that range
# and could otherwise grab a port another node is about to listen on.
FREE_PORT_LOW, FREE_PORT_HIGH = 12_000, 32_000


def find_free_base(count: int, attempts: int = 200) -> int:
    """A random even base port with `count` consecutive free ports on 127.0.0.1, in
    [FREE_PORT_LOW, FREE_PORT_HIGH); `port_in_use` when none is found."""
    for _ in range(attempts):
        base = random.randrange(FREE_PORT_LOW, FREE_PORT_HIGH - count, 2)
        try:
            check_ports_free(range(base, base + count))
        except TestnetError:
            continue
        return base
    raise TestnetError(
        f"no {count} consecutive free ports in {FREE_PORT_LOW}..{FREE_PORT_HIGH}", "port_in_use"
    )


def check_ports_free(ports: Sequence[int], host: str = HOST) -> None:
    """Bind each port on `host` (an IP literal of this machine) as a node would
    (SO_REUSEADDR) and let go again."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in ports:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise TestnetError(
                    f"port {port} on {host} is in use ({exc.strerror}); choose another --base-port",
                    "port_in_use",
                ) from exc


def check_host_ports_free(hosts: Sequence[str], ports: Sequence[int]) -> None:
    """`check_ports_free` on each host that is an address of this machine (127.0.0.0/8
    always is, on Linux); others are remote or not up yet (a network namespace's), and
    DNS names are not looked up: a node's own machine checks when it starts."""
    for host in hosts:
        if is_local_address(host):
            check_ports_free(ports, host)


def is_local_address(host: str) -> bool:
    """Whether `host` is an IP literal this machine can bind (port 0: no port taken)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
    except OSError:
        # EADDRNOTAVAIL: not ours; EAFNOSUPPORT: no IPv6 here, so not ours either
        return False
    return True


# ---------------------------------------------------------------------------------------
# hosts

# RFC 1123 labels: letters, digits, inner hyphens, 1-63 characters
_DNS_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_MAX_DNS_NAME: Final = 253


def check_host(host: str) -> str:
    """`host` as the manifest keeps it: an IPv4 or IPv6 literal (brackets dropped, the
    usual spelling) or a DNS name (lower case); else `bad_hosts`. Addresses no peer can
    dial (0.0.0.0, ::, multicast) and IPv6 zones (fe80::1%eth0) are refused."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is not None:
        if address.is_unspecified or address.is_multicast:
            raise TestnetError(
                f"host {host!r} is not an address a peer can dial; give each node's own",
                "bad_hosts",
            )
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise TestnetError(f"host {host!r}: IPv6 zones are not supported", "bad_hosts")
        return address.compressed
    labels = text.split(".")
    # an all-numeric last label reads as a (bad) IPv4 address, not a name (RFC 3696)
    if (
        not text
        or len(text) > _MAX_DNS_NAME
        or not all(_DNS_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise TestnetError(
            f"host {host!r} is neither an IPv4/IPv6 address nor a DNS name", "bad_hosts"
        )
    return text.lower()


def read_hosts_file(path: Path) -> dict[str, str]:
    """`bank=host` lines (blank lines and # comments ignored) as {bank: host}, hosts
    checked; a malformed line, a bank named twice or an unreadable file is `bad_hosts`."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TestnetError(f"cannot read hosts file {path}: {exc}", "bad_hosts") from exc
    hosts: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        bank, sep, host = (part.strip() for part in line.partition("="))
        if not sep or not bank or not host:
            raise TestnetError(
                f"{path}:{number}: expected bank=host, got {raw.strip()!r}", "bad_hosts"
            )
        bank = bank.lower()
        if bank in hosts:
            raise TestnetError(f"{path}:{number}: bank {bank} is named twice", "bad_hosts")
        try:
            hosts[bank] = check_host(host)
        except TestnetError as exc:
            raise TestnetError(f"{path}:{number}: {exc.message}", "bad_hosts") from exc
    return hosts


def assign_hosts(hosts: Sequence[str] | Mapping[str, str], nodes: Sequence[NodeEntry]) -> list[str]:
    """Each node's host, in the order of `nodes`, from a list in that order or a mapping
    bank -> host naming every node exactly once; checked (`check_host`) and distinct
    (every node uses the same ports, so two on one address would clash)."""
    names = ", ".join(node.bank for node in nodes)
    if isinstance(hosts, Mapping):
        unknown = sorted(set(hosts) - {node.bank for node in nodes})
        if unknown:
            raise TestnetError(
                f"no node for bank {', '.join(unknown)} in the hosts file; the nodes are {names}",
                "bad_hosts",
            )
        missing = [node.bank for node in nodes if node.bank not in hosts]
        if missing:
            raise TestnetError(
                f"the hosts file names no host for {', '.join(missing)}; the nodes are {names}",
                "bad_hosts",
            )
        listed = [hosts[node.bank] for node in nodes]
    else:
        if isinstance(hosts, str):
            raise TypeError("hosts: a sequence of hosts, not one string")
        listed = list(hosts)
        if len(listed) != len(nodes):
            raise TestnetError(
                f"{len(listed)} hosts for {len(nodes)} nodes ({names}): give one per node, "
                "in that order",
                "bad_hosts",
            )
    checked = [check_host(host) for host in listed]
    seen: dict[str, str] = {}
    for node, host in zip(nodes, checked, strict=True):
        if host in seen:
            raise TestnetError(
                f"host {host} is given to both {seen[host]} and {node.bank}: every node "
                "uses the same ports, so each needs its own address",
                "bad_hosts",
            )
        seen[host] = node.bank
    return checked


def format_url_host(host: str) -> str:
    """`host` as it goes in a URL: IPv6 in brackets."""
    return f"[{host}]" if ":" in host else host


def _clear_home(home: Path, force: bool) -> None:
    """Refuse an existing home unless forced; never wipe a folder that is not a testnet."""
    if not home.exists() or (home.is_dir() and not any(home.iterdir())):
        return
    # an existing testnet is replaced only on request
    if not force:
        raise TestnetError(
            f"{home} already exists; pass --force to stop its nodes and replace it",
            "testnet_exists",
        )
    # --force must not `rm -rf` an arbitrary folder given by mistake
    if not (home / MANIFEST_FILE).is_file():
        raise TestnetError(
            f"{home} is not empty and holds no {MANIFEST_FILE}; refusing to wipe it",
            "not_a_testnet",
        )
    down_testnet(home)
    shutil.rmtree(home)


def plan_nodes(
    banks: Sequence[tuple[str, bool]],
    base_port: int,
    *,
    tls: bool = False,
    hosts: Sequence[str] | None = None,
) -> tuple[NodeEntry, ...]:
    """Order nodes validators first (keeping genesis order) and give each its two ports
    (and an https:// URL with `tls`): on 127.0.0.1, two ports apart; with `hosts` (one
    per node, in this order) each on its host, all on `base_port` and `base_port + 1`."""
    ordered = [b for b in banks if b[1]] + [b for b in banks if not b[1]]
    if hosts is not None and len(hosts) != len(ordered):
        raise ValueError(f"{len(hosts)} hosts for {len(ordered)} nodes")
    scheme = "https" if tls else "http"
    nodes = []
    for i, (code, is_validator) in enumerate(ordered):
        host = HOST if hosts is None else hosts[i]
        p2p_port = base_port + 2 * i if hosts is None else base_port
        nodes.append(
            NodeEntry(
                name=code,
                bank=code,
                validator=is_validator,
                dir=f"{NODES_DIR}/{code}",
                http_url=f"{scheme}://{format_url_host(host)}:{p2p_port + 1}",
                p2p_port=p2p_port,
                http_port=p2p_port + 1,
                host=host,
            )
        )
    return tuple(nodes)


def _write_home(
    home: Path,
    genesis: Genesis,
    keys: Mapping[str, BankKeys],
    base_port: int,
    consensus: ConsensusConfig,
    *,
    tls: bool,
    hosts: Sequence[str] | None = None,
) -> Manifest:
    banks = [(bank.code, bank.validator) for bank in genesis.banks]
    nodes = plan_nodes(banks, base_port, tls=tls, hosts=hosts)
    manifest = Manifest(genesis.chain_id, genesis.genesis_time, base_port, nodes)
    home.mkdir(parents=True, exist_ok=True)
    save_genesis_file(home / GENESIS_FILE, genesis)
    ca = _write_ca(home, genesis.chain_id) if tls else None
    for node in nodes:
        _write_node(home, node, nodes, keys[node.bank], consensus, ca)
    (home / MANIFEST_FILE).write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    return manifest


def _write_node(
    home: Path,
    node: NodeEntry,
    nodes: Sequence[NodeEntry],
    keys: BankKeys,
    consensus: ConsensusConfig,
    ca: CertificateAuthority | None,
) -> None:
    node_dir = get_node_dir(home, node)
    node_dir.mkdir(parents=True)
    write_key_file(node_dir / NODE_KEY_FILE, keys.node)
    write_key_file(node_dir / OPERATOR_KEY_FILE, keys.operator)
    http_config = HttpConfig(host=node.host, port=node.http_port)
    if ca is not None:
        cert, key = _write_node_cert(ca, node_dir, node.name, node.host)
        http_config = replace(http_config, tls_cert=cert, tls_key=key)
    config = NodeConfig(
        name=node.name,
        bank=node.bank,
        path=node_dir / CONFIG_FILE,
        genesis=f"../../{GENESIS_FILE}",
        node_key=NODE_KEY_FILE,
        operator_key=OPERATOR_KEY_FILE,
        api_token=secrets.token_hex(16),
        log_file=LOG_FILE,
        http=http_config,
        p2p=P2PConfig(
            host=node.host,
            port=node.p2p_port,
            peers=tuple(peer.p2p_address for peer in nodes if peer is not node),
        ),
        consensus=consensus,
    )
    # the api token is a credential: same mode as the key files
    fd = os.open(config.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(render_config(config))


def _write_ca(home: Path, chain_id: str) -> CertificateAuthority:
    from cli.devnet import tls  # cryptography's x509: only `init --tls` pays its import

    ca = tls.make_ca(f"{chain_id} testnet CA", _utc_now())
    folder = home / TLS_DIR
    folder.mkdir()
    tls.write_private_key(folder / CA_KEY_FILE, ca.key)
    tls.write_certificate(folder / CA_CERT_FILE, ca.cert)
    return ca


def _write_node_cert(
    ca: CertificateAuthority, node_dir: Path, name: str, host: str
) -> tuple[str, str]:
    """The node's certificate for 127.0.0.1, localhost and `host`, and its key (0600);
    their paths relative to the node's folder, as `[http] tls_cert` and `tls_key`."""
    from cli.devnet import tls

    key, cert = tls.make_node_cert(ca, name, [host], _utc_now())
    (node_dir / TLS_DIR).mkdir()
    tls.write_private_key(node_dir / TLS_DIR / NODE_KEY_FILE_TLS, key)
    tls.write_certificate(node_dir / TLS_DIR / NODE_CERT_FILE, cert)
    return f"{TLS_DIR}/{NODE_CERT_FILE}", f"{TLS_DIR}/{NODE_KEY_FILE_TLS}"


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# ---------------------------------------------------------------------------------------
# processes

IsOurs = Callable[[int, Path], bool]
"""(pid, node folder) -> whether that live process is this folder's node."""
NodeCommand = Callable[[Path], list[str]]


def default_node_command(node_dir: Path) -> list[str]:
    """`bakong node run --home <node dir>` through this interpreter (works without PATH)."""
    return [sys.executable, "-m", "cli.main", "node", "run", "--home", str(node_dir)]


def get_node_pid(node_dir: Path, *, is_ours: IsOurs = is_process_of) -> int | None:
    """The pid of this node's running process, or None (no pid file, dead, or not ours)."""
    pid = _read_pid(node_dir)
    if pid is None or not is_process_alive(pid) or not is_ours(pid, node_dir):
        return None
    return pid


def _read_pid(node_dir: Path) -> int | None:
    try:
        pid = int((node_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def start_node(node_dir: Path, command: NodeCommand = default_node_command) -> int:
    """Start a node detached, output appended to node.out, and record its pid."""
    pid = spawn_detached(command(node_dir.resolve()), node_dir / OUT_FILE)
    write_pid_file(node_dir / PID_FILE, pid)
    return pid


# ---------------------------------------------------------------------------------------
# status


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One row of `testnet status`: the pid check plus what the node's /v1/status says
    (None where it does not answer). `catching_up` is set by `get_testnet_status`, which
    sees the other nodes: see `mark_catching_up`."""

    name: str
    bank: str
    validator: bool
    url: str
    pid: int | None
    height: int | None = None
    block_hash: str | None = None
    state_hash: str | None = None
    peers: int | None = None
    round: int | None = None
    mempool: int | None = None
    mempool_queued: int | None = None
    catching_up: bool | None = None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def serving(self) -> bool:
        return self.height is not None

    @property
    def state(self) -> str:
        """`serving`, `catching up`, `not serving` (its process runs, its API does not
        answer) or `stopped`."""
        if not self.running:
            return "stopped"
        if not self.serving:
            return "not serving"
        return "catching up" if self.catching_up else "serving"

    def to_json(self) -> dict[str, Any]:
        """The contract's keys (DESIGN.md), which scripts depend on, then added ones."""
        return {
            "name": self.name,
            "bank": self.bank,
            "validator": self.validator,
            "url": self.url,
            "pid": self.pid,
            "running": self.running,
            "height": self.height,
            "block_hash": self.block_hash,
            "state_hash": self.state_hash,
            "serving": self.serving,
            "peers": self.peers,
            "round": self.round,
            "mempool": self.mempool,
            "mempool_queued": self.mempool_queued,
            "catching_up": self.catching_up,
        }


@dataclass(frozen=True, slots=True)
class TestnetStatus:
    """What `testnet status --json` prints."""

    __test__ = False  # not a pytest test class, despite its name

    chain_id: str
    nodes: tuple[NodeStatus, ...]

    @property
    def healthy(self) -> bool:
        """Every node runs and serves (`testnet status` exits 0 only then)."""
        return all(node.serving for node in self.nodes)

    @property
    def height(self) -> int | None:
        """The highest height any node serves."""
        return max((n.height for n in self.nodes if n.height is not None), default=None)

    def to_json(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "nodes": [node.to_json() for node in self.nodes]}


def fetch_node_status(url: str, timeout: float = _STATUS_TIMEOUT_S) -> dict[str, Any] | None:
    """`GET <url>/v1/status`, or None when the node does not answer sensibly."""
    try:
        body = http.send("GET", f"{url}/v1/status", timeout=timeout)
    except (NodeReplyError, NodeUnreachable):
        return None
    return body if isinstance(body, dict) else None


def get_node_status(home: Path, node: NodeEntry, *, is_ours: IsOurs = is_process_of) -> NodeStatus:
    pid = get_node_pid(get_node_dir(home, node), is_ours=is_ours)
    base = NodeStatus(node.name, node.bank, node.validator, node.http_url, pid)
    # whatever answers on a port of a stopped node is not this node
    body = fetch_node_status(node.http_url) if pid is not None else None
    if body is None:
        return base
    return replace(
        base,
        height=_field(body, "height", int),
        block_hash=_field(body, "block_hash", str),
        state_hash=_field(body, "state_hash", str),
        peers=_field(body, "peers", int),
        round=_field(body, "round", int),
        mempool=_field(body, "mempool", int),
        mempool_queued=_field(body, "mempool_queued", int),
    )


def _field(body: Mapping[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def get_testnet_status(home: Path, *, is_ours: IsOurs = is_process_of) -> TestnetStatus:
    """Every node's status, queried in parallel so one hung node costs one timeout."""
    manifest = load_manifest(home)
    with ThreadPoolExecutor(max_workers=len(manifest.nodes) or 1) as pool:
        nodes = pool.map(lambda node: get_node_status(home, node, is_ours=is_ours), manifest.nodes)
        return TestnetStatus(manifest.chain_id, mark_catching_up(tuple(nodes)))


def mark_catching_up(nodes: Sequence[NodeStatus]) -> tuple[NodeStatus, ...]:
    """A serving node is catching up when its height is `CATCHING_UP_BLOCKS` or more below
    the highest height of the other serving nodes (it is fetching blocks it missed,
    e.g. after a restart); None for a node that does not serve."""
    marked = []
    for i, node in enumerate(nodes):
        others = [n.height for j, n in enumerate(nodes) if j != i and n.height is not None]
        if node.height is None:
            marked.append(replace(node, catching_up=None))
            continue
        top = max(others, default=node.height)
        marked.append(replace(node, catching_up=top - node.height >= CATCHING_UP_BLOCKS))
    return tuple(marked)


# ---------------------------------------------------------------------------------------
# up

Progress = Callable[[str], None]


def up_testnet(
    home: Path,
    *,
    timeout: float = DEFAULT_UP_TIMEOUT_S,
    command: NodeCommand = default_node_command,
    is_ours: IsOurs = is_process_of,
    progress: Progress | None = None,
) -> TestnetStatus:
    """Start every node that is not running, then wait until all serve and every
    validator sees all other validators. Idempotent: running nodes are left alone."""
    manifest = load_manifest(home)
    for node in manifest.nodes:
        node_dir = get_node_dir(home, node)
        if get_node_pid(node_dir, is_ours=is_ours) is None:
            (node_dir / PID_FILE).unlink(missing_ok=True)
            start_node(node_dir, command)
    return wait_until_ready(home, manifest, timeout=timeout, is_ours=is_ours, progress=progress)


def is_ready(node: NodeStatus, validator_count: int) -> bool:
    """Serving, and for a validator, connected to every other validator (at least)."""
    if not node.serving:
        return False
    return not node.validator or (node.peers or 0) >= validator_count - 1


def wait_until_ready(
    home: Path,
    manifest: Manifest,
    *,
    timeout: float,
    is_ours: IsOurs = is_process_of,
    progress: Progress | None = None,
) -> TestnetStatus:
    """Poll every node until all are ready; fail early when a node's process has exited."""
    deadline = time.monotonic() + timeout
    total = len(manifest.nodes)
    while True:
        status = get_testnet_status(home, is_ours=is_ours)
        ready = [n for n in status.nodes if is_ready(n, manifest.validator_count)]
        if len(ready) == total:
            return status
        if progress is not None:
            serving = sum(1 for n in status.nodes if n.serving)
            progress(f"waiting for {total} nodes... {serving}/{total} serving, {len(ready)} ready")
        exited = [n for n in manifest.nodes if not _has_live_process(get_node_dir(home, n))]
        if exited:
            raise _not_ready_error(home, exited, _describe_exits(home, exited))
        if time.monotonic() >= deadline:
            raise _timeout_error(home, manifest, status, timeout)
        time.sleep(_POLL_S)


def _timeout_error(
    home: Path, manifest: Manifest, status: TestnetStatus, timeout: float
) -> TestnetNotReady:
    pairs = zip(manifest.nodes, status.nodes, strict=True)
    stuck = [(m, n) for m, n in pairs if not is_ready(n, manifest.validator_count)]
    reasons = "; ".join(_get_not_ready_reason(n, manifest.validator_count) for _, n in stuck)
    return _not_ready_error(home, [m for m, _ in stuck], f"within {timeout:g}s: {reasons}")


def _get_not_ready_reason(node: NodeStatus, validator_count: int) -> str:
    if not node.serving:
        return f"{node.name} not serving"
    return f"{node.name} has {node.peers or 0} peers, needs {validator_count - 1}"


def _has_live_process(node_dir: Path) -> bool:
    """Pid file names a live process (a just-started child may not have exec'd yet, so its
    command line is not checked here)."""
    pid = _read_pid(node_dir)
    return pid is not None and is_process_alive(pid)


def _describe_exits(home: Path, nodes: Sequence[NodeEntry]) -> str:
    """ "exited", with how each ended when known (a node killed before it wrote a line
    leaves nothing in its logs)."""
    how = []
    for node in nodes:
        pid = _read_pid(get_node_dir(home, node))
        described = describe_exit(pid) if pid is not None else None
        if described:
            how.append(f"{node.name}: {described}")
    return f"exited: {', '.join(how)}" if how else "exited"


def _not_ready_error(home: Path, stuck: Sequence[NodeEntry], why: str) -> TestnetNotReady:
    names = ", ".join(node.name for node in stuck)
    dirs = [get_node_dir(home, node) for node in stuck]
    tails = [(path, tail) for d in dirs for path in _log_paths(d) if (tail := get_log_tail(path))]
    see = tails[0][0] if tails else dirs[0] / OUT_FILE
    return TestnetNotReady(f"{names} did not start ({why}); see {see}", tails[:_LOG_TAIL_FILES])


def _log_paths(node_dir: Path) -> list[Path]:
    """node.out first: a crash's traceback lands there, the node's own events in node.log."""
    return [node_dir / OUT_FILE, node_dir / LOG_FILE]


def get_log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> list[str]:
    """The last `lines` lines of a log (read from the end: logs grow large)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


# ---------------------------------------------------------------------------------------
# down


@dataclass(frozen=True, slots=True)
class StopResult:
    """What `down` did to a node: `stopped` (SIGTERM), `killed` (SIGKILL) or `not_running`."""

    name: str
    pid: int | None
    outcome: str


def down_testnet(
    home: Path,
    *,
    grace: float = DEFAULT_DOWN_GRACE_S,
    is_ours: IsOurs = is_process_of,
) -> tuple[StopResult, ...]:
    """SIGTERM every running node, SIGKILL those still up after `grace` seconds, and
    remove every pid file. Nodes that died on their own are reported `not_running`."""
    manifest = load_manifest(home)
    dirs = {node.name: get_node_dir(home, node) for node in manifest.nodes}
    pids = {name: get_node_pid(d, is_ours=is_ours) for name, d in dirs.items()}
    outcomes = terminate_all(
        {name: pid for name, pid in pids.items() if pid is not None}, grace, _KILL_WAIT_S
    )
    survived = [name for name, outcome in outcomes.items() if outcome == "survived"]
    for name, node_dir in dirs.items():
        if name not in survived:
            (node_dir / PID_FILE).unlink(missing_ok=True)
    # a process that outlives SIGKILL (stuck in the kernel) still holds its ports
    if survived:
        raise TestnetError(f"{', '.join(survived)} did not exit after SIGKILL", "stop_failed")
    return tuple(
        StopResult(name, pid, outcomes.get(name, "not_running")) for name, pid in pids.items()
    )
