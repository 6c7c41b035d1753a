"""One TOML file per node. Every field has a documented default; unknown keys are errors.

Example (what `bakong testnet init` writes, see `render_config`):

    name = "aclb"                 # node name, shown in status and logs
    bank = "aclb"                 # bank code this node belongs to
    genesis = "../genesis.json"   # shared genesis document (relative to this file)
    data_dir = "data"             # LevelDB store, mempool, signing state
    node_key = "node_key.json"    # Ed25519 key the node proves itself with (P2P, votes)
    operator_key = "operator_key.json"   # the bank's operator key (back-office signing)
    api_token = "..."             # bearer token for POST /v1/bank/transfers
    log_level = "info"

    [http]
    host = "127.0.0.1"
    port = 26657
    tls_cert = ""                 # HTTPS: PEM certificate (chain) and its key, both or
    tls_key = ""                  # neither (relative to this file); empty: plain HTTP

    [p2p]
    host = "127.0.0.1"
    port = 26656
    peers = ["127.0.0.1:26666", "127.0.0.1:26676"]

    [consensus]
    timeout_propose_ms = 1000     # grows by *_delta_ms each round
    ...
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from node.attest import THRESHOLDS
from node.errors import NodeError
from node.messages import compute_block_frame_bytes


class ConfigError(NodeError):
    code = "bad_config"


class TlsConfigError(ConfigError):
    """The HTTP API's certificate or key: half of the pair given, a file missing or
    unreadable, or a certificate and key that do not belong together."""

    code = "tls_config"


@dataclass(frozen=True, slots=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 26657
    max_body_bytes: int = 8 * 1024 * 1024
    # HTTPS when both are set: the PEM certificate (the node's first, then any
    # intermediates) and its private key. Empty: plain HTTP.
    tls_cert: str = ""
    tls_key: str = ""

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)


@dataclass(frozen=True, slots=True)
class P2PConfig:
    host: str = "127.0.0.1"
    port: int = 26656
    peers: tuple[str, ...] = ()
    max_frame_bytes: int = 16 * 1024 * 1024
    send_queue: int = 10_000
    # Before a peer is authenticated: the deadline for its handshake, and how many
    # handshakes may be in progress at once, in all and from one source address.
    handshake_timeout_ms: int = 5_000
    max_pending_handshakes: int = 64
    max_pending_handshakes_per_address: int = 16
    # Liveness after a network fault: every peer is pinged this often; a session silent
    # for dead_peer_timeout_ms is closed (also bounds TCP's retransmission of unacked
    # data, TCP_USER_TIMEOUT) and redialed, each attempt waiting at most connect_timeout_ms
    # and redial_max_ms between attempts, so a healed link is back within a few seconds.
    ping_interval_ms: int = 1_000
    dead_peer_timeout_ms: int = 5_000
    connect_timeout_ms: int = 2_000
    redial_max_ms: int = 2_000


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    timeout_propose_ms: int = 1000
    timeout_propose_delta_ms: int = 500
    timeout_prevote_ms: int = 500
    timeout_prevote_delta_ms: int = 250
    timeout_precommit_ms: int = 500
    timeout_precommit_delta_ms: int = 250
    # Wait this long after a commit before proposing, so a block gathers txs. Below
    # saturation this wait is most of a tx's latency: 50 ms against 100 ms took p50 from
    # 129-163 to 90-92 ms and p99 from 376-661 to 252-387 ms at 1,000 tx/s on 4 + 1
    # nodes (2 cores), for about 5 % less at saturation (docs/performance.md).
    timeout_commit_ms: int = 50
    # Propose an empty block after this long with no txs (0 = never: the chain stays idle).
    heartbeat_ms: int = 0
    max_block_txs: int = 5000
    max_block_bytes: int = 8 * 1024 * 1024
    # A block this node applies on a commit certificate it verified, without having
    # judged it live (every synced block; every block of a node that is not a validator),
    # is executed in full but its txs' signatures are not checked again: 2f+1 validators
    # signed the certificate, so f+1 honest ones checked them. Such a node also ignores
    # gossiped txs when it is not a validator (it still verifies its own clients' txs).
    # false: verify every signature of every block anyway (costs one verify per tx).
    trust_commits: bool = True


@dataclass(frozen=True, slots=True)
class MempoolConfig:
    capacity: int = 100_000
    # A signer may have at most this many pending txs beyond its committed nonce.
    nonce_window: int = 1000
    # Txs behind a nonce gap wait until it fills, out of blocks and without waking the
    # chain: at most this many per signer (beyond: `queue_full`), and this many of all
    # signers together (beyond: `mempool_queue_full`; keep it well below `capacity`, so
    # that txs that can execute always find room).
    max_queued_per_signer: int = 64
    max_queued: int = 10_000
    # Worker processes that verify admitted txs' signatures beside the event loop (see
    # node/verifier.py): for a node with cores of its own. 0: verify inline (best when
    # nodes share the cores, as on a one-machine testnet).
    verify_workers: int = 0
    # Validators share the verification of gossiped txs (node/attest.py): a batch is
    # verified by its origin and by the validators after it, which attest it, until
    # `vouchers` of them did; the others admit it on their word, without verifying its
    # signatures again (every other check still runs). false: this node verifies every
    # gossiped tx itself (it still attests the batches it is asked to).
    shared_verification: bool = True
    # How many validators must vouch for a batch: "quorum" (the consensus quorum, 2f+1
    # when n = 3f+1: a forged signature
    # would take as many colluding validators as a forged certificate does) or
    # "one_correct" (f+1: fewer verifications, but f+1 colluding validators could get a
    # forged tx committed). Every validator should use the same, though mixing is safe.
    vouchers: str = "quorum"
    # How long a validator waits for a batch's vouchers before verifying it itself.
    vouch_wait_ms: int = 300
    # Gossiped txs waiting for vouchers at most; beyond, a batch is verified at once.
    max_vouch_waiting: int = 20_000


@dataclass(frozen=True, slots=True)
class OpenApiConfig:
    """The Bakong Open API sandbox (see docs/open-api.md)."""

    # How long a token from request_token, verify or renew_token is accepted (90 days).
    token_ttl_ms: int = 90 * 86_400_000
    # Registrations kept (when full, one whose tokens all expired gives way), and the
    # most recent deeplinks kept.
    max_registrations: int = 10_000
    max_deeplinks: int = 10_000


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    bank: str
    path: Path  # the config file itself; relative paths resolve against its folder
    genesis: str = "genesis.json"
    data_dir: str = "data"
    node_key: str = "node_key.json"
    operator_key: str = ""
    api_token: str = ""
    log_level: str = "info"
    log_file: str = "node.log"
    http: HttpConfig = field(default_factory=HttpConfig)
    p2p: P2PConfig = field(default_factory=P2PConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    mempool: MempoolConfig = field(default_factory=MempoolConfig)
    openapi: OpenApiConfig = field(default_factory=OpenApiConfig)

    @property
    def home(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.home / p

    @property
    def genesis_path(self) -> Path:
        return self.resolve(self.genesis)

    @property
    def data_path(self) -> Path:
        return self.resolve(self.data_dir)

    @property
    def node_key_path(self) -> Path:
        return self.resolve(self.node_key)

    @property
    def operator_key_path(self) -> Path | None:
        return self.resolve(self.operator_key) if self.operator_key else None

    @property
    def log_path(self) -> Path:
        return self.resolve(self.log_file)

    @property
    def tls_cert_path(self) -> Path | None:
        return self.resolve(self.http.tls_cert) if self.http.tls_cert else None

    @property
    def tls_key_path(self) -> Path | None:
        return self.resolve(self.http.tls_key) if self.http.tls_key else None

    @property
    def http_url(self) -> str:
        scheme = "https" if self.http.tls else "http"
        host = self.http.host
        # an IPv6 literal goes in brackets in a URL
        shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"{scheme}://{shown}:{self.http.port}"


_SECTIONS: dict[str, type] = {
    "http": HttpConfig,
    "p2p": P2PConfig,
    "consensus": ConsensusConfig,
    "mempool": MempoolConfig,
    "openapi": OpenApiConfig,
}


def _build_section(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown setting")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        default = getattr(cls(), key) if cls is not NodeConfig else None
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key}: expected true or false")
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}.{key}: expected a list of strings")
            value = tuple(value)
        elif isinstance(default, int):
            if type(value) is not type(default) or (isinstance(value, int) and value < 0):
                raise ConfigError(f"{where}.{key}: expected a non-negative integer")
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"{where}.{key}: expected a string")
        values[key] = value
    return cls(**values)


def load_config(path: Path) -> NodeConfig:
    """Read and check a node's TOML config; errors name the bad setting."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    top: dict[str, Any] = {"path": path.resolve()}
    scalar = {f.name for f in fields(NodeConfig)} - set(_SECTIONS) - {"path"}
    for key, value in raw.items():
        if key in _SECTIONS:
            top[key] = _build_section(_SECTIONS[key], value, key)
        elif key in scalar:
            if not isinstance(value, str):
                raise ConfigError(f"{key}: expected a string")
            top[key] = value
        else:
            raise ConfigError(f"{key}: unknown setting")
    for required in ("name", "bank"):
        if required not in top:
            raise ConfigError(f"{required}: missing")
    config = NodeConfig(**top)
    check_config(config)
    return config


MAX_VERIFY_WORKERS = 64


def check_config(config: NodeConfig) -> None:
    """Settings that are each valid but do not work together are refused at load time."""
    if config.mempool.verify_workers > MAX_VERIFY_WORKERS:
        raise ConfigError(f"mempool.verify_workers: at most {MAX_VERIFY_WORKERS}")
    if config.mempool.vouchers not in THRESHOLDS:
        raise ConfigError(
            f"mempool.vouchers: {config.mempool.vouchers!r} is not one of "
            + ", ".join(repr(t) for t in THRESHOLDS)
        )
    # a certificate without its key (or the reverse) cannot serve HTTPS
    if bool(config.http.tls_cert) != bool(config.http.tls_key):
        given, missing = (
            ("tls_cert", "tls_key") if config.http.tls_cert else ("tls_key", "tls_cert")
        )
        raise TlsConfigError(
            f"http.{given} is set but http.{missing} is not: give both for HTTPS, or neither"
        )
    # A full block with its commit must fit one frame, or block sync can never send it.
    needed = compute_block_frame_bytes(
        config.consensus.max_block_bytes, config.consensus.max_block_txs
    )
    if needed > config.p2p.max_frame_bytes:
        raise ConfigError(
            f"consensus.max_block_bytes: a block of {config.consensus.max_block_bytes} bytes "
            f"of txs ({config.consensus.max_block_txs} at most) needs a frame of {needed} "
            f"bytes with its commit, over p2p.max_frame_bytes = {config.p2p.max_frame_bytes}; "
            "lower the one or raise the other"
        )


def render_config(config: NodeConfig) -> str:
    """TOML text for `config` (written by tomli_w), every setting written out so users see
    what they can change."""
    doc: dict[str, Any] = {}
    for f in fields(NodeConfig):
        if f.name in _SECTIONS or f.name == "path":
            continue
        doc[f.name] = getattr(config, f.name)
    for section in _SECTIONS:
        sub = getattr(config, section)
        doc[section] = {f.name: _plain(getattr(sub, f.name)) for f in fields(sub)}
    return tomli_w.dumps(doc)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def parse_peer(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"p2p.peers: bad address {address!r}, expected host:port")
    return host, int(port)
