"""Hosts on one machine, for tests: one Linux network namespace per node, joined by a
bridge, each with its own address in a private range that only these namespaces use.

    host side:  bridge bk<run>br 10.213.<o>.1/24      (the test reaches every node here)
    node i:     netns  bk<run>-<i>, veth bk<run>-n<i> 10.213.<o>.<11+i>/24, lo up
                its peer bk<run>-h<i> is a port of the bridge

Everything a run creates is named with its run id (`bk` + 6 hex digits; link names stay
within the kernel's 15 characters) and listed in a state file (`/run/bakong-netns/<run>.json`,
or under the temp folder without /run) that names the owner process. The state file is
written *before* anything is created, so a crash at any point leaves a record of it:
`cleanup_stale` (run by every `Network.create`) removes the namespaces, links, mounts and
processes of every run whose owner is gone. A live run removes its own on every exit
path: `close` (the context manager), an atexit hook, and SIGTERM/SIGHUP (turned into
SystemExit so that `with` blocks unwind). Only SIGKILL of the owner leaves things behind,
and the next run's `cleanup_stale` removes them.

Partitions are nftables rules inside the namespaces (`set_blocked`): a table of our own
in each namespace drops packets to and from the peers it must not reach, silently (as a
cut cable does). The host's address is never blocked, so clients reach every node.
Needs root, `ip` (iproute2) and `nft` (nftables): `unusable_reason` says why not.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

from cli.errors import CliError

RUN_PREFIX: Final = "bk"
RUN_ID_RE: Final = re.compile(r"^bk[0-9a-f]{6}")
DEFAULT_BASE: Final = "10.213"
HOST_OCTET: Final = 1
FIRST_NODE_OCTET: Final = 11
MAX_HOSTS: Final = 200
NFT_TABLE: Final = "bknemesis"
STATE_DIR_ENV: Final = "BAKONG_NETNS_STATE_DIR"
_KILL_WAIT_S: Final = 10.0
_LOCK = threading.Lock()  # within this process: plan, sweep and close one at a time
_POLL_S: Final = 0.05


class NetnsError(CliError):
    code = "netns_error"


def unusable_reason() -> str | None:
    """Why namespaces cannot be built here (not root, a tool missing), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (run as root, as CI does)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("mount", "mount")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install {package})"
    return None


def new_run_id() -> str:
    return RUN_PREFIX + secrets.token_hex(3)


def get_state_dir() -> Path:
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return Path(override)
    run = Path("/run")
    if run.is_dir() and os.access(run, os.W_OK):
        return run / "bakong-netns"
    return Path(tempfile.gettempdir()) / "bakong-netns"


# ---------------------------------------------------------------------------------------
# commands


def _run(args: Sequence[str], *, input: str | None = None, check: bool = True) -> str:
    try:
        done = subprocess.run(
            list(args), input=input, capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"{' '.join(args)}: {exc}") from exc
    if check and done.returncode != 0:
        raise NetnsError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _json_cmd(args: Sequence[str]) -> list[dict[str, Any]]:
    out = _run(args, check=False).strip()
    try:
        parsed = json.loads(out) if out else []
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


def list_netns() -> list[str]:
    return [str(ns["name"]) for ns in _json_cmd(["ip", "-j", "netns", "list"]) if "name" in ns]


def list_links() -> list[str]:
    return [str(link["ifname"]) for link in _json_cmd(["ip", "-j", "link", "show"])]


def list_mounts() -> list[tuple[str, str]]:
    """(source, mount point) of every mount of this mount namespace."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            parts, rest = left.split(), right.split()
            if len(parts) >= 5 and len(rest) >= 2:
                found.append((rest[1], _unescape(parts[4])))
    return found


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def netns_pids(netns: str) -> list[int]:
    out = _run(["ip", "netns", "pids", netns], check=False)
    return [int(word) for word in out.split() if word.isdigit()]


def _process_start(pid: int) -> int | None:
    """The start time of `pid` (clock ticks since boot), to tell it from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return int(fields[19]) if len(fields) > 19 and fields[0] != "Z" else None


def kill_netns_processes(netns: str, timeout: float = _KILL_WAIT_S) -> list[int]:
    """SIGKILL every process inside `netns` and wait until they are gone; their pids."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        pids = netns_pids(netns)
        if not pids:
            return killed
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if pid not in killed:
                killed.append(pid)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        if time.monotonic() > deadline:
            raise NetnsError(f"processes {pids} in {netns} survived SIGKILL")
        time.sleep(_POLL_S)


# ---------------------------------------------------------------------------------------
# the state file


@dataclass
class RunState:
    """What a run created (or is about to), and who owns it."""

    run_id: str
    owner_pid: int
    owner_start: int | None
    octet: int
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "owner_pid": self.owner_pid,
            "owner_start": self.owner_start,
            "octet": self.octet,
            "netns": self.netns,
            "links": self.links,
            "mounts": self.mounts,
        }

    @staticmethod
    def from_json(raw: Any) -> RunState:
        return RunState(
            run_id=str(raw["run_id"]),
            owner_pid=int(raw["owner_pid"]),
            owner_start=raw.get("owner_start"),
            octet=int(raw["octet"]),
            netns=[str(n) for n in raw.get("netns", [])],
            links=[str(n) for n in raw.get("links", [])],
            mounts=[str(n) for n in raw.get("mounts", [])],
        )

    def owner_alive(self) -> bool:
        start = _process_start(self.owner_pid)
        return start is not None and (self.owner_start is None or start == self.owner_start)


@contextlib.contextmanager
def _state_lock() -> Iterator[None]:
    """Across processes: one run at a time sweeps stale runs and claims a subnet."""
    folder = get_state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with _LOCK, (folder / ".lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _state_path(run_id: str) -> Path:
    return get_state_dir() / f"{run_id}.json"


def _write_state(state: RunState) -> None:
    folder = get_state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = _state_path(state.run_id)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=1) + "\n")
    tmp.replace(path)


def _read_states() -> list[RunState]:
    states = []
    folder = get_state_dir()
    for path in sorted(folder.glob("bk*.json")) if folder.is_dir() else []:
        try:
            states.append(RunState.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return states


# ---------------------------------------------------------------------------------------
# removal (shared by close and the stale sweep)


def _remove(state: RunState) -> list[str]:
    """Remove everything `state` lists and anything else named with its run id: processes
    in its namespaces, mounts, namespaces, links; then the state file. What it removed."""
    removed: list[str] = []
    rid = state.run_id
    namespaces = list(
        dict.fromkeys([*state.netns, *(n for n in list_netns() if n.startswith(rid))])
    )
    present = set(list_netns())
    for ns in namespaces:
        if ns in present:
            removed += [f"process {pid}" for pid in kill_netns_processes(ns)]
    mounts = [point for source, point in list_mounts() if source.startswith(rid)]
    for point in dict.fromkeys([*reversed(state.mounts), *mounts]):
        if any(p == point for _, p in list_mounts()):
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode:
                _run(["umount", "-l", point], check=False)
            removed.append(f"mount {point}")
    for ns in namespaces:
        if ns in present:
            _run(["ip", "netns", "delete", ns], check=False)
            removed.append(f"netns {ns}")
    links = set(list_links())
    for link in dict.fromkeys([*state.links, *(n for n in links if n.startswith(rid))]):
        if link in links:
            _run(["ip", "link", "delete", link], check=False)
            removed.append(f"link {link}")
    _state_path(rid).unlink(missing_ok=True)
    return removed


def find_leftovers(run_id: str) -> list[str]:
    """Whatever of run `run_id` still exists: namespaces, links, mounts, state file."""
    left = [f"netns {n}" for n in list_netns() if n.startswith(run_id)]
    left += [f"link {n}" for n in list_links() if n.startswith(run_id)]
    left += [f"mount {p}" for s, p in list_mounts() if s.startswith(run_id)]
    if _state_path(run_id).exists():
        left.append(f"state {_state_path(run_id)}")
    return left


def cleanup_stale() -> list[str]:
    """Remove every run whose owner process is gone, and any namespace, link or mount named
    like a run (`bk` + 6 hex) that no live run claims. What it removed."""
    removed: list[str] = []
    states = _read_states()
    live = {s.run_id for s in states if s.owner_alive()}
    live |= {n.run_id for n in _OPEN if not n.closed}
    for state in states:
        if state.run_id not in live:
            removed += _remove(state)
    orphans: set[str] = set()
    names = [*list_netns(), *list_links(), *(s for s, _ in list_mounts())]
    for name in names:
        match = RUN_ID_RE.match(name)
        if match and match.group(0) not in live:
            orphans.add(match.group(0))
    for rid in sorted(orphans):
        removed += _remove(RunState(rid, 0, None, 0))
    return removed


# ---------------------------------------------------------------------------------------
# the network


@dataclass(frozen=True, slots=True)
class Host:
    """One node's "host": its namespace, address and the two ends of its veth pair."""

    name: str
    netns: str
    address: str
    veth_ns: str
    veth_host: str


_OPEN: list[Network] = []
_PREVIOUS_HANDLERS: dict[int, Any] = {}
_HANDLED_SIGNALS: Final = (signal.SIGTERM, signal.SIGHUP)


def _close_all() -> None:
    for network in list(_OPEN):
        with contextlib.suppress(Exception):
            network.close()


atexit.register(_close_all)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # unwind: `with` blocks and finally clauses close what they opened; atexit the rest
    raise SystemExit(128 + signum)


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in _HANDLED_SIGNALS:
        if sig in _PREVIOUS_HANDLERS:
            continue
        current = signal.getsignal(sig)
        if current in (signal.SIG_DFL, None):
            _PREVIOUS_HANDLERS[sig] = current
            signal.signal(sig, _on_signal)


def _restore_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, previous in list(_PREVIOUS_HANDLERS.items()):
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        del _PREVIOUS_HANDLERS[sig]


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host has an address or a route in."""
    nets: list[ipaddress.IPv4Network] = []
    for route in _json_cmd(["ip", "-j", "-4", "route", "show", "table", "all"]):
        dst = str(route.get("dst", ""))
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.IPv4Network(dst, strict=False))
    for link in _json_cmd(["ip", "-j", "-4", "addr", "show"]):
        for info in link.get("addr_info", []):
            with contextlib.suppress(ValueError, KeyError):
                nets.append(
                    ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
                )
    return nets


def _choose_octet(base: str, claimed: Collection[int]) -> int:
    used = _used_networks()
    choices = list(range(1, 255))
    secrets.SystemRandom().shuffle(choices)
    for octet in choices:
        if octet in claimed:
            continue
        candidate = ipaddress.IPv4Network(f"{base}.{octet}.0/24")
        if not any(candidate.overlaps(net) for net in used):
            return octet
    raise NetnsError(f"no free /24 left in {base}.0.0/16 on this host")


class Network:
    """The namespaces of one run. Use as a context manager, or call `close`."""

    def __init__(self, state: RunState, names: Sequence[str], base: str) -> None:
        self.state = state
        self.run_id = state.run_id
        self.base = base
        self.subnet = f"{base}.{state.octet}"
        self.bridge = f"{self.run_id}br"
        self.host_address = f"{self.subnet}.{HOST_OCTET}"
        self.hosts: dict[str, Host] = {
            name: Host(
                name=name,
                netns=f"{self.run_id}-{i}",
                address=f"{self.subnet}.{FIRST_NODE_OCTET + i}",
                veth_ns=f"{self.run_id}-n{i}",
                veth_host=f"{self.run_id}-h{i}",
            )
            for i, name in enumerate(names)
        }
        self.closed = False
        self.blocked: dict[str, frozenset[str]] = {name: frozenset() for name in names}

    # creation

    @classmethod
    def plan(cls, names: Sequence[str], *, base: str = DEFAULT_BASE) -> Network:
        """Choose the run id and addresses and record them in the state file, creating
        nothing yet (a caller may need the addresses first, e.g. for `testnet init
        --hosts`). Stale runs are removed first. `build` creates it all."""
        if not 0 < len(names) <= MAX_HOSTS:
            raise NetnsError(f"need 1 to {MAX_HOSTS} hosts, got {len(names)}")
        reason = unusable_reason()
        if reason is not None:
            raise NetnsError(reason, "netns_unavailable")
        with _state_lock():
            cleanup_stale()
            claimed = {s.octet for s in _read_states()}
            octet = _choose_octet(base, claimed)
            run_id = new_run_id()
            state = RunState(run_id, os.getpid(), _process_start(os.getpid()), octet)
            network = cls(state, names, base)
            state.netns = [h.netns for h in network.hosts.values()]
            state.links = [network.bridge, *(h.veth_host for h in network.hosts.values())]
            _write_state(state)
            _OPEN.append(network)
        _install_signal_handlers()
        return network

    @classmethod
    def create(cls, names: Sequence[str], *, base: str = DEFAULT_BASE) -> Network:
        network = cls.plan(names, base=base)
        try:
            network.build()
        except BaseException:
            network.close()
            raise
        return network

    def build(self) -> None:
        """Bridge with the host's address, then per node: namespace, veth pair, address,
        loopback and link up."""
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"{self.host_address}/24", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        for host in self.hosts.values():
            _run(["ip", "netns", "add", host.netns])
            _run(
                ["ip", "link", "add", host.veth_host, "type", "veth", "peer", "name", host.veth_ns]
            )
            _run(["ip", "link", "set", host.veth_ns, "netns", host.netns])
            _run(["ip", "link", "set", host.veth_host, "master", self.bridge, "up"])
            ns = ["ip", "-n", host.netns]
            _run([*ns, "addr", "add", f"{host.address}/24", "dev", host.veth_ns])
            _run([*ns, "link", "set", host.veth_ns, "up"])
            _run([*ns, "link", "set", "lo", "up"])

    # use

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def names(self) -> list[str]:
        return list(self.hosts)

    def relabel(self, names: Sequence[str]) -> None:
        """Call the hosts `names` (in their order) from now on: addresses are chosen before
        the nodes they will carry are named (`testnet init --hosts` needs the addresses)."""
        if len(names) != len(self.hosts) or len(set(names)) != len(names):
            raise NetnsError(f"need {len(self.hosts)} distinct names, got {list(names)}")
        if any(self.blocked.values()):
            raise NetnsError("heal before relabelling")
        self.hosts = {
            new: Host(new, h.netns, h.address, h.veth_ns, h.veth_host)
            for new, h in zip(names, self.hosts.values(), strict=True)
        }
        self.blocked = {name: frozenset() for name in names}

    def address(self, name: str) -> str:
        return self.hosts[name].address

    def exec_args(self, name: str) -> list[str]:
        """The prefix that runs a command inside `name`'s namespace."""
        return ["ip", "netns", "exec", self.hosts[name].netns]

    def run_in(self, name: str, args: Sequence[str], *, input: str | None = None) -> str:
        return _run([*self.exec_args(name), *args], input=input)

    def pids(self, name: str) -> list[int]:
        return netns_pids(self.hosts[name].netns)

    # partitions

    def set_blocked(self, blocked: Mapping[str, Iterable[str]]) -> None:
        """Each node drops every packet to and from the nodes listed for it (a node not
        in `blocked` reaches everyone). Replaces any rules set before. Pass a symmetric
        relation for a two-way cut."""
        for name in self.hosts:
            peers = frozenset(blocked.get(name, ()))
            unknown = peers - set(self.hosts)
            if unknown:
                raise NetnsError(f"unknown hosts {sorted(unknown)}")
            if peers == self.blocked[name]:
                continue
            self.run_in(
                name, ["nft", "-f", "-"], input=_nft_script([self.address(p) for p in peers])
            )
            self.blocked[name] = peers

    def heal(self) -> None:
        self.set_blocked({})

    def read_rules(self, name: str) -> str:
        return self.run_in(name, ["nft", "list", "ruleset"])

    # disks

    def mount_tmpfs(self, path: Path, size_bytes: int) -> None:
        """A tmpfs of `size_bytes` at `path` (made if missing), named with the run id so
        that a stale sweep finds it; unmounted by `close`."""
        path.mkdir(parents=True, exist_ok=True)
        point = str(path.resolve())
        self.state.mounts.append(point)
        _write_state(self.state)
        source = f"{self.run_id}-disk"
        _run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", source, point])

    def unmount(self, path: Path) -> None:
        point = str(path.resolve())
        if subprocess.run(["umount", point], capture_output=True, check=False).returncode:
            _run(["umount", "-l", point], check=False)
        if point in self.state.mounts:
            self.state.mounts.remove(point)
            _write_state(self.state)

    # removal

    def close(self) -> list[str]:
        """Kill every process in the namespaces, unmount, delete namespaces and links, and
        the state file. Idempotent; what it removed."""
        with _LOCK:
            if self.closed:
                return []
            self.closed = True
            try:
                removed = _remove(self.state)
            finally:
                if self in _OPEN:
                    _OPEN.remove(self)
            if not _OPEN:
                _restore_signal_handlers()
        return removed


def _nft_script(addresses: Sequence[str]) -> str:
    """One nft transaction: (re)create our table, dropping traffic to and from
    `addresses` (nothing when empty: the table goes away)."""
    lines = [f"table inet {NFT_TABLE}", f"delete table inet {NFT_TABLE}"]
    if addresses:
        elements = ", ".join(addresses)
        lines += [
            f"table inet {NFT_TABLE} {{",
            f"  set cut {{ type ipv4_addr; elements = {{ {elements} }}; }}",
            "  chain input { type filter hook input priority -10; policy accept;",
            "    ip saddr @cut drop; }",
            "  chain output { type filter hook output priority -10; policy accept;",
            "    ip daddr @cut drop; }",
            "}",
        ]
    return "\n".join(lines) + "\n"


def groups_to_blocked(groups: Sequence[Collection[str]]) -> dict[str, set[str]]:
    """Nodes reach only the members of their own groups (a node may be in several, as the
    middle of a bridge is); every other pair is cut both ways."""
    names = sorted({n for g in groups for n in g})
    reach = {n: {m for g in groups if n in g for m in g} for n in names}
    return {n: {m for m in names if m not in reach[n]} for n in names}
