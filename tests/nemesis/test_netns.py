"""Hosts made of network namespaces: each has its own address, the host reaches every
one through the bridge, nft rules cut and heal links, and nothing of a run is left
behind: not after `close`, not after SIGTERM of its owner, and after SIGKILL of its
owner the next run's sweep removes it. Needs root (CI runs as root)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli.devnet.nemesis.netns import (
    Network,
    cleanup_stale,
    find_leftovers,
    groups_to_blocked,
    list_links,
    list_netns,
    unusable_reason,
)
from tests.node.netutil import wait_for

pytestmark = pytest.mark.skipif(
    unusable_reason() is not None, reason=f"network namespaces: {unusable_reason()}"
)

PORT = 18_080
ROOT = Path(__file__).resolve().parents[2]


def can_connect_from(net: Network, name: str, address: str, port: int = PORT) -> bool:
    code = f"import socket; socket.create_connection(({address!r}, {port}), timeout=1).close()"
    done = subprocess.run(
        [*net.exec_args(name), sys.executable, "-c", code], capture_output=True, check=False
    )
    return done.returncode == 0


def can_connect_from_host(address: str, port: int = PORT) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
    except OSError:
        return False
    return True


def serve_in(net: Network, name: str) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [*net.exec_args(name), sys.executable, "-m", "http.server", "--bind", net.address(name),
         str(PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(lambda: can_connect_from_host(net.address(name)), 30, f"a server in {name}")
    return server


def test_hosts_reach_each_other_partitions_cut_and_heal(tmp_path: Path) -> None:
    with Network.create(["a", "b", "c"]) as net:
        run_id = net.run_id
        addresses = [h.address for h in net.hosts.values()]
        assert len(set(addresses)) == 3 and all(a.startswith(net.subnet + ".") for a in addresses)
        assert all(
            len(name) <= 15 for name in [net.bridge, *(h.veth_host for h in net.hosts.values())]
        )
        servers = [serve_in(net, name) for name in ("a", "b")]
        assert can_connect_from(net, "c", net.address("a"))
        # a | b c: a is cut off from both, b and c still talk, the host reaches everyone
        net.set_blocked(groups_to_blocked([["a"], ["b", "c"]]))
        assert not can_connect_from(net, "c", net.address("a"))
        assert not can_connect_from(net, "a", net.address("b"))
        assert can_connect_from(net, "c", net.address("b"))
        assert can_connect_from_host(net.address("a"))
        assert net.address("b") in net.read_rules("a")
        net.heal()
        assert can_connect_from(net, "c", net.address("a"))
        assert "bknemesis" not in net.read_rules("a")
        disk = tmp_path / "disk"
        net.mount_tmpfs(disk, 1 << 20)
        assert f"mount {disk.resolve()}" in find_leftovers(run_id)
    # the servers ran inside the namespaces: gone with them, like everything else
    for server in servers:
        assert server.wait(timeout=10) == -signal.SIGKILL
    assert find_leftovers(run_id) == []
    assert not any(n.startswith(run_id) for n in list_netns() + list_links())


def test_a_bridge_partition_leaves_the_middle_reaching_both_sides() -> None:
    blocked = groups_to_blocked([["a", "b", "m"], ["m", "c", "d"]])
    assert blocked["m"] == set()
    assert blocked["a"] == {"c", "d"} and blocked["c"] == {"a", "b"}
    ring = groups_to_blocked([["a", "b"], ["b", "c"], ["c", "d"], ["d", "e"], ["e", "a"]])
    assert ring["a"] == {"c", "d"} and ring["c"] == {"a", "e"}


OWNER = textwrap.dedent(
    """
    import subprocess, sys, time
    from pathlib import Path
    from cli.devnet.nemesis.netns import Network
    net = Network.create(["a", "b"])
    net.mount_tmpfs(Path(sys.argv[1]), 1 << 20)
    subprocess.Popen([*net.exec_args("a"), "sleep", "1000"])
    print(net.run_id, flush=True)
    time.sleep(1000)
    """
)


def start_owner(tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path / "disk")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert owner.stdout is not None
    run_id = owner.stdout.readline().strip()
    assert run_id.startswith("bk"), run_id
    left = find_leftovers(run_id)
    assert any(x.startswith("netns") for x in left) and any(x.startswith("mount") for x in left)
    return owner, run_id


def _sleepers() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes() == b"sleep\x001000\x00":
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_sigterm_of_the_owner_removes_its_run(tmp_path: Path) -> None:
    owner, run_id = start_owner(tmp_path)
    owner.send_signal(signal.SIGTERM)
    assert owner.wait(timeout=30) == 128 + signal.SIGTERM
    assert find_leftovers(run_id) == []


def test_a_run_whose_owner_was_killed_is_swept_by_the_next(tmp_path: Path) -> None:
    owner, run_id = start_owner(tmp_path)
    sleepers = _sleepers()
    assert sleepers
    owner.kill()
    owner.wait(timeout=30)
    assert find_leftovers(run_id) != []  # SIGKILL leaves it all behind...
    removed = cleanup_stale()  # ...until a sweep (every Network.create runs one)
    assert f"netns {run_id}-0" in removed
    assert find_leftovers(run_id) == []
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in sleepers), 10, "sleep gone")


def test_the_sweep_leaves_a_live_run_alone(tmp_path: Path) -> None:
    owner, run_id = start_owner(tmp_path)
    try:
        before = find_leftovers(run_id)
        cleanup_stale()
        done = subprocess.run(
            [sys.executable, "-c", "from cli.devnet.nemesis.netns import cleanup_stale; "
             "print(cleanup_stale())"],
            capture_output=True, text=True, cwd=ROOT, check=True,
        )  # fmt: skip
        assert run_id not in done.stdout
        assert find_leftovers(run_id) == before
    finally:
        owner.send_signal(signal.SIGTERM)
        owner.wait(timeout=30)
    assert find_leftovers(run_id) == []
