"""Detached processes: spawn, liveness, command-line ownership, terminate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.devnet.processes import (
    get_cmdline,
    is_process_alive,
    is_process_of,
    is_zombie,
    spawn_detached,
    terminate_all,
)

SLEEP = "import time; time.sleep(60)"
IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"


def wait_exec(pid: int) -> int:
    """Popen returns once exec has begun, but the kernel shows the new command line a
    moment later; tests that check ownership right away wait for it."""
    deadline = time.monotonic() + 10
    while get_cmdline(pid) is None:
        assert time.monotonic() < deadline, "child never showed its command line"
        time.sleep(0.005)
    return pid


class Children:
    """Processes a test started; killed and reaped at teardown."""

    def __init__(self) -> None:
        self.popens: list[subprocess.Popen[bytes]] = []
        self.pids: list[int] = []

    def popen(self, args: list[str], cwd: Path | None = None) -> int:
        child = subprocess.Popen(args, stdin=subprocess.DEVNULL, cwd=cwd)
        self.popens.append(child)
        return wait_exec(child.pid)

    def spawn(self, args: list[str], out: Path) -> int:
        pid = spawn_detached(args, out)
        self.pids.append(pid)
        return pid


@pytest.fixture
def children() -> Iterator[Children]:
    tracker = Children()
    try:
        yield tracker
    finally:
        for child in tracker.popens:
            child.kill()
            child.wait()
        for pid in tracker.pids:
            if is_process_alive(pid):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


def wait_reaped(pid: int) -> None:
    deadline = time.monotonic() + 10
    while is_process_alive(pid):
        assert time.monotonic() < deadline, "process did not exit"
        time.sleep(0.02)


def test_spawn_detached_basic(tmp_path: Path, children: Children) -> None:
    out = tmp_path / "node.out"
    out.write_text("earlier run\n")
    script = (
        "import os, sys; "
        "print('own session', os.getsid(0) == os.getpid(), flush=True); "
        "print('stdin empty', sys.stdin.read() == '', flush=True); "
        "print('to stderr', file=sys.stderr, flush=True)"
    )
    pid = children.spawn([sys.executable, "-c", script], out)
    wait_reaped(pid)
    assert out.read_text().splitlines() == [
        "earlier run",
        "own session True",
        "stdin empty True",
        "to stderr",
    ]


def test_invalid_spawn_missing_program(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        spawn_detached(["no-such-program-bakong"], tmp_path / "out")


def test_is_process_alive_basic(children: Children) -> None:
    assert is_process_alive(os.getpid())
    assert is_process_alive(children.popen([sys.executable, "-c", SLEEP]))


def test_invalid_alive_after_exit(tmp_path: Path, children: Children) -> None:
    pid = children.spawn([sys.executable, "-c", "pass"], tmp_path / "out")
    wait_reaped(pid)
    assert not is_process_alive(pid)


def test_invalid_alive_zombie() -> None:
    # our own child, dead but not reaped: is_process_alive reaps it and says no
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while not is_zombie(child.pid):
        time.sleep(0.01)
    assert not is_process_alive(child.pid)
    child.wait()


def test_is_process_of_basic(tmp_path: Path, children: Children) -> None:
    pid = children.popen([sys.executable, "-c", SLEEP, str(tmp_path)])
    assert is_process_of(pid, tmp_path)
    assert get_cmdline(pid) == [sys.executable, "-c", SLEEP, str(tmp_path)]


def test_is_process_of_relative_argument(tmp_path: Path, children: Children) -> None:
    folder = tmp_path / "nodes" / "nbc"
    folder.mkdir(parents=True)
    pid = children.popen([sys.executable, "-c", SLEEP, "nodes/nbc"], cwd=tmp_path)
    assert is_process_of(pid, folder)


def test_invalid_process_of_other_folder(tmp_path: Path, children: Children) -> None:
    pid = children.popen([sys.executable, "-c", SLEEP, str(tmp_path / "other")])
    assert not is_process_of(pid, tmp_path)


def test_invalid_process_of_gone(tmp_path: Path, children: Children) -> None:
    pid = children.spawn([sys.executable, "-c", "pass", str(tmp_path)], tmp_path / "out")
    wait_reaped(pid)
    assert get_cmdline(pid) is None
    assert not is_process_of(pid, tmp_path)


def test_terminate_all_basic(tmp_path: Path, children: Children) -> None:
    polite = children.spawn([sys.executable, "-c", SLEEP], tmp_path / "a")
    stubborn = children.spawn([sys.executable, "-c", IGNORE_TERM], tmp_path / "b")
    time.sleep(0.5)  # let it install its SIGTERM handler
    outcomes = terminate_all({"a": polite, "b": stubborn}, grace=0.5, kill_wait=5)
    assert outcomes == {"a": "stopped", "b": "killed"}
    assert not is_process_alive(polite) and not is_process_alive(stubborn)


def test_terminate_all_already_gone(tmp_path: Path, children: Children) -> None:
    pid = children.spawn([sys.executable, "-c", "pass"], tmp_path / "out")
    wait_reaped(pid)
    assert terminate_all({"a": pid}, grace=1, kill_wait=1) == {"a": "stopped"}
