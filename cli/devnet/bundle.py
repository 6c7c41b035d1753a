"""`bakong testnet bundle`: pack each node of a testnet home for the machine it runs on.

A testnet made with `init --hosts` lists one host per node; the bundle holds one folder
per node, to copy to that host, with all that node needs and nothing of the others':

    <out>/README.md                 how to start each node (systemd or compose)
    <out>/bundle.json               {"chain_id", "nodes": [{"name", "host", ...}]}
    <out>/ca.crt                    with --tls: the CA certificate (never its key)
    <out>/<node>/README.md          this node's commands
    <out>/<node>/home/              what `bakong node run --home` reads: node.toml (its
                                    genesis beside it), genesis.json, node_key.json,
                                    operator_key.json, tls/node.crt, tls/node.key
    <out>/<node>/bakong-<node>.service   systemd unit: /var/lib/bakong/<node>, user bakong
    <out>/<node>/compose.yaml       `docker compose up -d`: the image built from src/,
                                    host networking, ./home mounted at /var/lib/bakong/<node>
    <out>/<node>/Containerfile      (Dockerfile: a symlink to it), .dockerignore
    <out>/<node>/src/               the package's source: pyproject.toml, README.md and
                                    its packages, for `pip install .`
    <out>/<node>/ca.crt             with --tls, for clients on that host

Not copied: the wallet (the operators' keys, kept in the testnet home on the operator's
machine), the CA key, the other nodes' keys, configs (api tokens) and TLS keys, and the
node's own data, logs and pid file (a bundled node starts from genesis).

Modes: every folder 0700, secrets (node.toml with its api token, key files, the TLS key)
0600, the rest 0644. The bundle is written beside `out` and renamed into place, so a
failure leaves no half bundle.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Final

import cli
from cli.devnet import testnet as tn
from node.config import ConfigError, NodeConfig, load_config, render_config

BUNDLE_FILE: Final = "bundle.json"
README_FILE: Final = "README.md"
HOME_DIR: Final = "home"
SOURCE_DIR: Final = "src"
COMPOSE_FILE: Final = "compose.yaml"
CONTAINER_FILE: Final = "Containerfile"
DOCKER_FILE: Final = "Dockerfile"
IGNORE_FILES: Final = (".dockerignore", ".containerignore")
# where a node's home lives on its host, under systemd and in the container
REMOTE_ROOT: Final = PurePosixPath("/var/lib/bakong")
# the virtualenv the systemd unit runs bakong from
INSTALL_DIR: Final = PurePosixPath("/opt/bakong")
SERVICE_USER: Final = "bakong"
# the container's user: a fixed uid, so the mounted home can be given to it
CONTAINER_UID: Final = 10001
BASE_IMAGE: Final = "docker.io/library/python:3.11-slim-bookworm"
# files of the source tree's top level that `pip install .` needs besides the packages
SOURCE_FILES: Final = ("pyproject.toml", "README.md", "LICENSE", "LICENSE.txt", "NOTICE")

DIR_MODE: Final = 0o700
SECRET_MODE: Final = 0o600
PUBLIC_MODE: Final = 0o644

# names inside a bundled home
_GENESIS: Final = "genesis.json"
_TLS_CERT: Final = f"{tn.TLS_DIR}/{tn.NODE_CERT_FILE}"
_TLS_KEY: Final = f"{tn.TLS_DIR}/{tn.NODE_KEY_FILE_TLS}"


class BundleError(tn.TestnetError):
    code = "bundle_error"


@dataclass(frozen=True, slots=True)
class BundledNode:
    """One node's folder of a bundle."""

    name: str
    host: str
    p2p_port: int
    http_port: int
    http_url: str
    validator: bool
    dir: Path

    @property
    def home(self) -> Path:
        return self.dir / HOME_DIR

    @property
    def remote_home(self) -> PurePosixPath:
        return REMOTE_ROOT / self.name

    @property
    def unit_name(self) -> str:
        return f"bakong-{self.name}.service"


@dataclass(frozen=True, slots=True)
class Bundle:
    out: Path
    chain_id: str
    tls: bool
    nodes: tuple[BundledNode, ...]
    local_only: bool  # a testnet made without --hosts: every node on 127.0.0.1


def find_source_tree() -> Path | None:
    """The source tree this package was loaded from (an editable or in-tree install),
    or None (installed from a wheel: no pyproject.toml beside the packages)."""
    root = Path(cli.__file__).resolve().parent.parent
    return root if _is_source_tree(root) else None


def _is_source_tree(root: Path) -> bool:
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return bool(project.get("project", {}).get("name") == "bakong-sim")


def bundle_testnet(
    home: Path, out: Path, *, force: bool = False, source: Path | None = None
) -> Bundle:
    """Write the bundle of `home`'s testnet to `out` (see the module's doc). An existing
    non-empty `out` is refused (`bundle_exists`) unless `force`, which replaces only a
    former bundle (`not_a_bundle` otherwise). `source`: the source tree to package
    (default: `find_source_tree`)."""
    manifest = tn.load_manifest(home)
    tree = source if source is not None else find_source_tree()
    if tree is None or not _is_source_tree(tree):
        where = f"{tree} holds no" if tree is not None else "found no source tree with a"
        raise BundleError(
            f"{where} pyproject.toml of bakong-sim; pass --source DIR (a checkout of the project)",
            "no_source_tree",
        )
    version = _read_version(tree)
    configs = {node.name: _load_node_config(home, node) for node in manifest.nodes}
    out = out.absolute()
    _check_out(out, home, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(staging, DIR_MODE)
        tls = any(config.http.tls for config in configs.values())
        ca = tn.get_ca_path(home) if tls and tn.get_ca_path(home).is_file() else None
        nodes = tuple(
            _write_node(staging, out, node, configs[node.name], tree, version, manifest, ca)
            for node in manifest.nodes
        )
        if ca is not None:
            _copy_file(ca, staging / tn.CA_CERT_FILE, PUBLIC_MODE)
        local_only = all(node.host == tn.HOST for node in manifest.nodes)
        bundle = Bundle(out, manifest.chain_id, tls, nodes, local_only)
        _write_text(staging / BUNDLE_FILE, _render_bundle_json(bundle), PUBLIC_MODE)
        _write_text(staging / README_FILE, render_readme(bundle), PUBLIC_MODE)
        _replace_out(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return bundle


def _read_version(tree: Path) -> str:
    project = tomllib.loads((tree / "pyproject.toml").read_text())
    version = project.get("project", {}).get("version")
    return version if isinstance(version, str) else "latest"


def _load_node_config(home: Path, node: tn.NodeEntry) -> NodeConfig:
    path = tn.get_node_dir(home, node) / tn.CONFIG_FILE
    try:
        return load_config(path)
    except ConfigError as exc:
        raise BundleError(f"node {node.name}: {exc.message}", exc.code) from exc


def _check_out(out: Path, home: Path, force: bool) -> None:
    """`out` may be new or empty; a non-empty one only with `force`, and only a bundle."""
    if out.exists() and not out.is_dir():
        raise BundleError(f"{out} exists and is not a folder", "bundle_exists")
    # the bundle must not swallow the home it is made of, nor the home the bundle
    resolved, home_resolved = out.resolve(), home.resolve()
    if resolved == home_resolved or home_resolved.is_relative_to(resolved):
        raise BundleError(f"--out {out} would contain the testnet home {home}", "bad_out")
    if not out.exists() or not any(out.iterdir()):
        return
    if not force:
        raise BundleError(
            f"{out} exists and is not empty; pass --force to replace it", "bundle_exists"
        )
    # --force must not `rm -rf` an arbitrary folder given by mistake
    if not (out / BUNDLE_FILE).is_file():
        raise BundleError(
            f"{out} is not empty and holds no {BUNDLE_FILE}; refusing to replace it",
            "not_a_bundle",
        )


def _replace_out(staging: Path, out: Path) -> None:
    if out.exists():
        # an empty folder, or a former bundle under --force (checked by _check_out)
        shutil.rmtree(out)
    staging.rename(out)


def _write_node(
    staging: Path,
    out: Path,
    node: tn.NodeEntry,
    config: NodeConfig,
    tree: Path,
    version: str,
    manifest: tn.Manifest,
    ca: Path | None,
) -> BundledNode:
    folder = staging / node.name
    _mkdir(folder)
    bundled = BundledNode(
        node.name,
        node.host,
        config.p2p.port,
        config.http.port,
        node.http_url,
        node.validator,
        out / node.name,
    )
    _write_home(folder / HOME_DIR, config)
    _copy_source(tree, folder / SOURCE_DIR)
    _write_text(folder / bundled.unit_name, render_unit(bundled, manifest.chain_id), PUBLIC_MODE)
    _write_text(folder / CONTAINER_FILE, render_containerfile(bundled), PUBLIC_MODE)
    os.symlink(CONTAINER_FILE, folder / DOCKER_FILE)
    for ignore in IGNORE_FILES:
        # the build context is the node's folder: its secrets stay out of the image
        _write_text(folder / ignore, f"{HOME_DIR}\n*.service\n", PUBLIC_MODE)
    _write_text(folder / COMPOSE_FILE, render_compose(bundled, version), PUBLIC_MODE)
    if ca is not None and config.http.tls:
        _copy_file(ca, folder / tn.CA_CERT_FILE, PUBLIC_MODE)
    _write_text(folder / README_FILE, render_node_readme(bundled, manifest.chain_id), PUBLIC_MODE)
    return bundled


def _write_home(target: Path, config: NodeConfig) -> None:
    """The files `bakong node run --home` reads, under fixed names, and a node.toml
    pointing at them (its genesis beside it, not two folders up)."""
    _mkdir(target)
    _copy_file(config.genesis_path, target / _GENESIS, PUBLIC_MODE)
    _copy_file(config.node_key_path, target / tn.NODE_KEY_FILE, SECRET_MODE)
    operator = ""
    if config.operator_key_path is not None:
        operator = tn.OPERATOR_KEY_FILE
        _copy_file(config.operator_key_path, target / operator, SECRET_MODE)
    http_config = config.http
    if config.tls_cert_path is not None and config.tls_key_path is not None:
        _mkdir(target / tn.TLS_DIR)
        _copy_file(config.tls_cert_path, target / _TLS_CERT, PUBLIC_MODE)
        _copy_file(config.tls_key_path, target / _TLS_KEY, SECRET_MODE)
        http_config = replace(http_config, tls_cert=_TLS_CERT, tls_key=_TLS_KEY)
    bundled = replace(
        config,
        path=target / tn.CONFIG_FILE,
        genesis=_GENESIS,
        node_key=tn.NODE_KEY_FILE,
        operator_key=operator,
        data_dir=_inside(config.data_dir, "data"),
        log_file=_inside(config.log_file, tn.LOG_FILE),
        http=http_config,
    )
    # the api token is a credential
    _write_text(bundled.path, render_config(bundled), SECRET_MODE)


def _inside(relative: str, default: str) -> str:
    """A path of node.toml that stays inside the home, or `default`."""
    path = PurePosixPath(relative)
    return relative if not path.is_absolute() and ".." not in path.parts else default


def _copy_source(tree: Path, target: Path) -> None:
    """pyproject.toml, README.md (its `readme`), a licence if any, and the packages
    that pyproject's [tool.setuptools.packages.find] includes, without bytecode."""
    _mkdir(target)
    for name in SOURCE_FILES:
        if (tree / name).is_file():
            _copy_file(tree / name, target / name, PUBLIC_MODE)
    for package in _find_packages(tree):
        for path in _walk_source(tree / package):
            relative = path.relative_to(tree)
            if path.is_dir():
                _mkdir(target / relative)
            else:
                _copy_file(path, target / relative, PUBLIC_MODE)


def _find_packages(tree: Path) -> list[str]:
    project = tomllib.loads((tree / "pyproject.toml").read_text())
    find = project.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
    patterns = find.get("include", ["*"])
    return sorted(
        entry.name
        for entry in tree.iterdir()
        if entry.is_dir()
        and (entry / "__init__.py").is_file()
        and any(fnmatch.fnmatchcase(entry.name, p) for p in patterns)
    )


def _walk_source(root: Path) -> Iterator[Path]:
    """Folders before their files; no __pycache__, bytecode, or hidden entries."""
    yield root
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            yield from _walk_source(entry)
        elif entry.is_file() and entry.suffix not in (".pyc", ".pyo"):
            yield entry


# ---------------------------------------------------------------------------------------
# file writing with exact modes


def _mkdir(path: Path) -> None:
    path.mkdir()
    os.chmod(path, DIR_MODE)


def _write_text(path: Path, text: str, mode: int) -> None:
    _write_bytes(path, text.encode(), mode)


def _write_bytes(path: Path, data: bytes, mode: int) -> None:
    """A new file created with `mode` (a secret is never readable by others, not even for
    a moment), set exactly whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(data)


def _copy_file(source: Path, target: Path, mode: int) -> None:
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {source}: {exc.strerror or exc}", "bundle_error") from exc
    _write_bytes(target, data, mode)


# ---------------------------------------------------------------------------------------
# what goes in the files


def _render_bundle_json(bundle: Bundle) -> str:
    doc = {
        "chain_id": bundle.chain_id,
        "tls": bundle.tls,
        "nodes": [
            {
                "name": node.name,
                "validator": node.validator,
                "host": node.host,
                "p2p_port": node.p2p_port,
                "http_port": node.http_port,
                "http_url": node.http_url,
                "unit": node.unit_name,
            }
            for node in bundle.nodes
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def render_unit(node: BundledNode, chain_id: str) -> str:
    """The systemd service: `bakong node run` as user bakong from the virtualenv
    INSTALL_DIR, its home the only writable path, restarted when it fails."""
    home = node.remote_home
    return f"""\
# Bakong node {node.name} of {chain_id}: P2P {node.host}:{node.p2p_port}, API {node.http_url}
# Install: see README.md beside this file.
[Unit]
Description=Bakong node {node.name} ({chain_id})
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User={SERVICE_USER}
Group={SERVICE_USER}
ExecStart={INSTALL_DIR}/bin/bakong node run --home {home}
WorkingDirectory={home}
Restart=on-failure
RestartSec=2s
# SIGTERM: the node finishes its block write and exits
KillSignal=SIGTERM
TimeoutStopSec=30s
LimitNOFILE=65536
UMask=0077
StateDirectory={home.relative_to("/var/lib")}
StateDirectoryMode=0700
ReadWritePaths={home}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
"""


def render_containerfile(node: BundledNode) -> str:
    """The image: the package installed from src/ with pip, run as uid CONTAINER_UID."""
    home = node.remote_home
    return f"""\
# Bakong node image, built from the source in src/ (docker compose build, podman build)
FROM {BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --uid {CONTAINER_UID} --user-group --home-dir {REMOTE_ROOT} \\
        --shell /usr/sbin/nologin {SERVICE_USER}
COPY {SOURCE_DIR}/ /tmp/bakong-src/
RUN pip install /tmp/bakong-src && rm -rf /tmp/bakong-src
USER {CONTAINER_UID}:{CONTAINER_UID}
# P2P and the HTTP API
EXPOSE {node.p2p_port}/tcp {node.http_port}/tcp
VOLUME ["{home}"]
ENTRYPOINT ["bakong"]
CMD ["node", "run", "--home", "{home}"]
"""


def render_compose(node: BundledNode, version: str) -> str:
    """The compose file (the Compose Specification, also read by docker-compose 1.29):
    one service, host networking because the node listens on its host's own address
    (`[p2p] host`, `[http] host`), the home bind-mounted, a read-only root file system."""
    home = str(node.remote_home)
    q = json.dumps  # a JSON string is a YAML scalar: no quoting rules to get wrong
    return f"""\
# Bakong node {node.name}: docker compose up -d --build (or podman-compose), in this folder.
# The node listens on its host's own address {node.host} (P2P {node.p2p_port},
# API {node.http_port}), so the container shares the host's network.
# ./home must belong to uid {CONTAINER_UID}: sudo chown -R {CONTAINER_UID}:{CONTAINER_UID} home
services:
  {node.name}:
    build:
      context: "."
      dockerfile: {q(CONTAINER_FILE)}
    image: {q(f"bakong-sim:{version}")}
    container_name: {q(f"bakong-{node.name}")}
    command: ["node", "run", "--home", {q(home)}]
    network_mode: "host"
    expose:
      - {q(str(node.p2p_port))}
      - {q(str(node.http_port))}
    volumes:
      - type: "bind"
        source: "./{HOME_DIR}"
        target: {q(home)}
    user: {q(f"{CONTAINER_UID}:{CONTAINER_UID}")}
    restart: "on-failure"
    init: true
    read_only: true
    tmpfs:
      - "/tmp"
    cap_drop:
      - "ALL"
    security_opt:
      - "no-new-privileges:true"
    stop_signal: "SIGTERM"
    stop_grace_period: "30s"
"""


def _node_commands(node: BundledNode) -> list[str]:
    """The commands to start `node` on its host, run in its folder there."""
    home = node.remote_home
    curl = "curl --cacert ca.crt" if node.http_url.startswith("https:") else "curl"
    return [
        f"With systemd (the package in a virtualenv, the home owned by user {SERVICE_USER}):",
        "",
        "```sh",
        f"sudo useradd --system --user-group --home-dir {REMOTE_ROOT} "
        f"--shell /usr/sbin/nologin {SERVICE_USER}",
        f"sudo python3 -m venv {INSTALL_DIR} && sudo {INSTALL_DIR}/bin/pip install ./{SOURCE_DIR}",
        f"sudo install -d -m 0700 -o {SERVICE_USER} -g {SERVICE_USER} {home}",
        f"sudo cp -a {HOME_DIR}/. {home}/ && sudo chown -R {SERVICE_USER}:{SERVICE_USER} {home}",
        f"sudo install -m 0644 {node.unit_name} /etc/systemd/system/",
        f"sudo systemctl daemon-reload && sudo systemctl enable --now {node.unit_name}",
        f"systemctl status {node.unit_name}; sudo tail -f {home}/{tn.LOG_FILE}",
        "```",
        "",
        "or with compose (Docker or Podman; the image is built here from `src/`):",
        "",
        "```sh",
        f"sudo chown -R {CONTAINER_UID}:{CONTAINER_UID} {HOME_DIR}",
        "docker compose up -d --build        # or: podman-compose up -d",
        f"docker compose ps; sudo tail -f {HOME_DIR}/{tn.LOG_FILE}",
        "```",
        "",
        f"Open TCP {node.p2p_port} (P2P) to the other nodes' hosts and {node.http_port} "
        "(the API) to its clients, then check it:",
        "",
        "```sh",
        f"{curl} {node.http_url}/v1/status",
        "```",
        "",
    ]


def render_node_readme(node: BundledNode, chain_id: str) -> str:
    role = "validator" if node.validator else "observer"
    lines = [
        f"# Bakong node {node.name} ({chain_id}) for {node.host}",
        "",
        f"The {role} node {node.name}: P2P on {node.host}:{node.p2p_port}, API "
        f"{node.http_url}. Copy this folder to {node.host} and run the commands below in it.",
        f"`{HOME_DIR}/` is the node's home (node.toml, genesis.json, its keys): it goes to",
        f"{node.remote_home} (systemd) or is mounted there (compose). Keep it private: it",
        "holds the node's keys and its back-office token.",
        "",
        *_node_commands(node),
    ]
    return "\n".join(lines)


def render_readme(bundle: Bundle) -> str:
    rows = [
        f"| {n.name} | {'validator' if n.validator else 'observer'} | {n.host} | "
        f"{n.p2p_port} | {n.http_port} | [`{n.name}/`]({n.name}/{README_FILE}) |"
        for n in bundle.nodes
    ]
    warning: Sequence[str] = ()
    if bundle.local_only:
        warning = (
            "**Every node listens on 127.0.0.1**: this testnet was made without `--hosts`,",
            "so its nodes reach each other only on one machine. For several hosts, make it",
            "with `bakong testnet init --hosts H1,H2,...` and bundle it again.",
            "",
        )
    tls: Sequence[str] = ()
    if bundle.tls:
        tls = (
            "The API is HTTPS with certificates of the testnet's CA, which name each node's",
            "host: `ca.crt` (here and in each node's folder) verifies them; the CA's key",
            "stayed in the testnet home.",
            "",
        )
    example = bundle.nodes[0]
    lines = [
        f"# Bakong network {bundle.chain_id}: one folder per node",
        "",
        *warning,
        "| node | role | host | P2P port | API port | folder |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "Copy each folder to its host (`scp -r nbc/ HOST:`, `rsync -a`; it holds that node's",
        "keys: keep it private) and start the node there with systemd or compose, with the",
        "commands in the folder's README.md. Start them in any order: a node redials its",
        "peers until they answer, and blocks commit once more than two thirds of the",
        "validators run.",
        "",
        "Each folder holds the node's home (`home/`: node.toml, genesis.json, its node and",
        "operator keys, its TLS files), a systemd unit `bakong-<node>.service`,",
        "`compose.yaml` with its `Containerfile` (and `Dockerfile`), and the package's",
        "source (`src/`) to install. Nothing of another node: the wallet with the operators'",
        "keys stays in the testnet home the bundle was made from, from where",
        "`bakong --home HOME ...` drives the network through the nodes' API.",
        "",
        *tls,
        "Firewall: each host accepts TCP on its P2P port from the other nodes' hosts and on",
        "its API port from its clients. More in docs/deploy.md of the project.",
        "",
        f"For example, on {example.host}, in the folder `{example.name}/`:",
        "",
        *_node_commands(example),
    ]
    return "\n".join(lines)
