"""Options every `bakong` command shares, and the translation of errors into the one-line
`error: <code>: <message>` the contract promises (also under click's test runner, which
does not go through `cli.main.main`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from cli import http
from cli.devnet.testnet import get_ca_path
from cli.errors import LAYER_ERRORS, to_cli_error

F = TypeVar("F", bound=Callable[..., Any])


def home_option(func: F) -> F:
    return click.option(
        "--home",
        envvar="BAKONG_HOME",
        default="./testnet",
        type=click.Path(path_type=Path, file_okay=False),
        show_default=True,
        callback=_trust_home,
        help="Testnet home (env BAKONG_HOME): its manifest lists the nodes, "
        "HOME/wallet holds the keys, HOME/tls/ca.crt (--tls) verifies the nodes.",
    )(func)


def _trust_home(ctx: click.Context, param: click.Parameter, home: Path) -> Path:
    """The nodes of HOME's testnet (also one given by --node) verify against its CA
    when it has one, unless --cacert or BAKONG_CACERT name another."""
    http.use_testnet_ca(get_ca_path(home))
    return home


def cacert_option(func: F) -> F:
    """The global `bakong --cacert FILE` (see cli.http for the order of trust)."""
    return click.option(
        "--cacert",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        metavar="FILE",
        callback=_use_cacert,
        expose_value=False,
        help="Verify HTTPS nodes against this CA certificate (PEM). Default: env "
        "BAKONG_CACERT, else HOME/tls/ca.crt of a testnet made with --tls, else the "
        "system's trust (SSL_CERT_FILE).",
    )(func)


def _use_cacert(ctx: click.Context, param: click.Parameter, path: Path | None) -> None:
    _forget_trust()
    http.use_ca_file(path)
    # the choice is this invocation's: another in the same process (tests) starts afresh
    ctx.call_on_close(_forget_trust)


def _forget_trust() -> None:
    http.use_ca_file(None)
    http.use_testnet_ca(None)


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
