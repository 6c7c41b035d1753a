"""No traceback from any command on any input (issue 14): every command of the `bakong`
tree, found by walking it, runs with no arguments, with bad arguments, and against a
testnet whose nodes are all stopped; each run ends with a clean exit or the one-line
`error: <code>: <message>`, never an exception.

Commands run in-process under click's runner, which turns an exception that escapes a
command into `result.exception` (in a real process: a traceback): the test asserts there
is none, whatever the exit code."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cli.devnet import testnet as tn
from cli.main import cli
from cli.testnet import write_wallet
from tests.node.netutil import find_free_base

ERROR_LINE = re.compile(r"^error: [a-z_]+: .+")
# Commands that would start or keep running something; they are run in the other ways.
NOT_AGAINST_A_TESTNET = {
    ("node", "run"),
    ("testnet", "up"),
    ("testnet", "init"),
    ("explorer", "follow"),
    ("logs",),
    ("bench",),
}
NEVER_BARE = {("node", "run"), ("testnet", "up"), ("testnet", "down")}


def _leaves(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _leaves(command, (*path, name))
        else:
            yield (*path, name)


COMMANDS = list(_leaves(cli))


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None
        command = found
    return command


def _placeholder(param: click.Parameter, tmp: Path) -> str:
    """A plausible value for a required parameter, of its type."""
    kind = param.type
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, click.IntRange | click.FloatRange) or kind in (click.INT, click.FLOAT):
        return "1"
    if isinstance(kind, click.Path):
        target = tmp / "placeholder.txt"
        target.write_text("x\n")
        return str(target)
    name = (param.name or "").lower()
    if "account" in name or name in ("to", "from_", "from"):
        return "admin@aba"
    if "hash" in name:
        return "ab" * 32
    if name in ("bank", "operator", "code", "base", "quote"):
        return "aba" if name in ("bank", "operator", "code") else "USD"
    return "1"


def _plausible_args(path: tuple[str, ...], tmp: Path) -> list[str]:
    args: list[str] = []
    for param in _command(path).params:
        if not param.required:
            continue
        value = _placeholder(param, tmp)
        if isinstance(param, click.Argument):
            args.append(value)
        else:
            args += [param.opts[0], value]
    return args


def _check(result: Result, args: list[str]) -> None:
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), (args, repr(exc), result.output)
    assert "Traceback" not in result.output, (args, result.output)
    if result.exit_code == 2:
        # a usage error, printed by click ("Error: ..."; main() makes it `error: usage:
        # ...` in a real process)
        assert "Error: " in result.stderr, (args, result.stderr)
    elif result.exit_code not in (0, None):
        lines = result.stderr.strip().splitlines() if result.stderr else []
        assert lines and ERROR_LINE.match(lines[-1]), (args, result.stderr)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A testnet made and never started (every node is down)."""
    home = tmp_path_factory.mktemp("stopped") / "testnet"
    tn.init_testnet(home, validators=2, observers=0, base_port=find_free_base(4),
                    wallet=write_wallet)  # fmt: skip
    return home


def _run(args: list[str], home: Path, tmp: Path) -> Result:
    """In `tmp` as the working directory, so nothing lands in the checkout."""
    env = {"BAKONG_HOME": str(home), "BAKONG_NODE": None, "BAKONG_PASSPHRASE": None}
    before = Path.cwd()
    os.chdir(tmp)
    try:
        return CliRunner().invoke(cli, args, env=env, catch_exceptions=True)
    finally:
        os.chdir(before)


# Commands run bare except those that would start or stop the testnet's nodes.
BARE = [path for path in COMMANDS if path not in NEVER_BARE]
# Commands run against the stopped testnet except those that start or follow something
# (they run bare and with bad arguments).
AGAINST = [
    path
    for path in COMMANDS
    if path not in NOT_AGAINST_A_TESTNET and path[:1] not in NOT_AGAINST_A_TESTNET
]


@pytest.mark.parametrize("path", BARE, ids=" ".join)
def test_no_arguments(path: tuple[str, ...], stopped: Path, tmp_path: Path) -> None:
    _check(_run(list(path), stopped, tmp_path), list(path))


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_bad_arguments(path: tuple[str, ...], stopped: Path, tmp_path: Path) -> None:
    for extra in (["--no-such-flag"], ["\x00", "\udcff"], ["x" * 5000], ["-1", "--", "-"]):
        args = [*path, *extra]
        _check(_run(args, stopped, tmp_path), args)


@pytest.mark.parametrize("path", AGAINST, ids=" ".join)
def test_against_a_stopped_testnet(path: tuple[str, ...], stopped: Path, tmp_path: Path) -> None:
    args = [*path, *_plausible_args(path, tmp_path)]
    _check(_run(args, stopped, tmp_path), args)
