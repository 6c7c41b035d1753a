"""Detached child processes: spawn one, tell whether a pid is still it, stop a group.

Used by the testnet manager, whose nodes outlive the command that started them. The
process table is read from /proc where there is one (Linux), else from `ps`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

_POLL_S: Final = 0.05


def spawn_detached(args: Sequence[str], out_path: Path) -> int:
    """Start `args` in a new session (no controlling terminal, stdin /dev/null, stdout and
    stderr appended to `out_path`); its pid. posix_spawn leaves no Popen to outlive us."""
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        return os.posix_spawnp(
            args[0],
            list(args),
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out, 1),
                (os.POSIX_SPAWN_DUP2, out, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(out)


# Wait statuses of our children that `is_process_alive` reaped, by pid (the latest few):
# how a node that "did not start" ended.
_reaped: dict[int, int] = {}


def write_pid_file(path: Path, pid: int) -> None:
    """Write `pid` to `path` atomically (a temporary file renamed over it): a reader never
    sees the empty file that truncating in place shows for a moment. (`testnet up` polls
    the pid files while each node writes its own: an empty read made a starting node look
    exited, and the testnet was torn down around it.)"""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, path)


def is_process_alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie; reaps it first if it is our child (its
    wait status is kept for `describe_exit`)."""
    with contextlib.suppress(ChildProcessError):
        waited, status = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            _reaped[pid] = status
            while len(_reaped) > 64:
                del _reaped[next(iter(_reaped))]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not is_zombie(pid)


def describe_exit(pid: int) -> str | None:
    """How our child `pid` ended, if `is_process_alive` reaped it: "exit code N" or
    "killed by SIGNAME"; None if unknown (not our child, or not reaped here)."""
    status = _reaped.get(pid)
    if status is None:
        return None
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return f"killed by {name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


def is_process_of(pid: int, folder: Path) -> bool:
    """Whether an argument of `pid`'s command line names `folder` (relative arguments are
    resolved against the process's working directory).

    A pid file can outlive its process and the pid be reused by anything; a process whose
    arguments name the folder it was started for is still that process. (For a moment
    during exec a process shows no command line, and so reads as not ours.)
    """
    args = get_cmdline(pid)
    if args is None:
        return False
    target = folder.resolve()
    cwd = _get_cwd(pid)
    return any(_resolves_to(arg, cwd, target) for arg in args)


def _resolves_to(arg: str, cwd: Path | None, target: Path) -> bool:
    path = Path(arg)
    if not path.is_absolute():
        if cwd is None:
            return False
        path = cwd / path
    try:
        return path.resolve() == target
    except (OSError, RuntimeError):
        return False


def _get_cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def get_cmdline(pid: int) -> list[str] | None:
    """The arguments `pid` runs with, or None (gone, a zombie, or not readable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None if Path("/proc/self").exists() else _get_cmdline_ps(pid)
    except OSError:
        return None
    # a zombie has an empty command line: it is not running anything
    return raw.decode(errors="replace").split("\0")[:-1] or None


def _get_cmdline_ps(pid: int) -> list[str] | None:
    """Where there is no /proc (macOS); splits on blanks, good enough to find a folder."""
    result = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout.split() or None


def terminate_all(pids: Mapping[str, int], grace: float, kill_wait: float) -> dict[str, str]:
    """SIGTERM every process, SIGKILL those alive after `grace` seconds. The outcome per
    key: `stopped`, `killed`, or `survived` (still alive `kill_wait` s after SIGKILL)."""
    for pid in pids.values():
        _send(pid, signal.SIGTERM)
    left = wait_exit(pids, grace)
    for pid in left.values():
        _send(pid, signal.SIGKILL)
    survived = wait_exit(left, kill_wait)
    return {
        key: "survived" if key in survived else "killed" if key in left else "stopped"
        for key in pids
    }


def _send(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_exit(pids: Mapping[str, int], timeout: float) -> dict[str, int]:
    """Poll until every process has exited or `timeout` passed; those still alive."""
    deadline = time.monotonic() + timeout
    alive = dict(pids)
    while alive:
        alive = {key: pid for key, pid in alive.items() if is_process_alive(pid)}
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(_POLL_S)
    return alive
