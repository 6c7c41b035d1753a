"""Options every `bakong` command shares, and the translation of errors into the one-line
`error: <code>: <message>` the contract promises (also under click's test runner, which
does not go through `cli.main.main`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from cli.errors import LAYER_ERRORS, to_cli_error

F = TypeVar("F", bound=Callable[..., Any])


def home_option(func: F) -> F:
    return click.option(
        "--home",
        envvar="BAKONG_HOME",
        default="./testnet",
        type=click.Path(path_type=Path, file_okay=False),
        show_default=True,
        help="Testnet home (env BAKONG_HOME): its manifest lists the nodes, "
        "HOME/wallet holds the keys.",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


def node_option(func: F) -> F:
    return click.option(
        "--node",
        "node_url",
        metavar="URL",
        envvar="BAKONG_NODE",
        help="Talk to this node's HTTP API (env BAKONG_NODE) instead of the first node "
        "of HOME's testnet that answers.",
    )(func)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the lower layers' errors into `CliError` (one line, exit 1); the cli's own
    errors are CliErrors already."""
    try:
        yield
    except LAYER_ERRORS as exc:
        raise to_cli_error(exc) from exc
