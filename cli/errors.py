"""The CLI's one exception base, and the error bases of the layers below it: the entry
point prints any of them as one line `error: <code>: <message>` and exits 1."""

from __future__ import annotations

from typing import IO, Any

import click

from ledger.errors import CodedError

# Every layer's base: what `user_errors` and the entry point turn into one line.
# The bases of the packages below (LedgerError, ConsensusError, GenesisError, NodeError).
LAYER_ERRORS = (CodedError,)


class CliError(click.ClickException):
    """Base of every cli error. `code` is stable and part of the public contract. A
    ClickException, so click's own runner prints it as one line too (exit 1)."""

    code: str = "cli_error"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message or self.code)
        if code is not None:
            self.code = code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.code}: {self.message}", err=True)


def to_cli_error(exc: CodedError) -> CliError:
    """A lower layer's error as the one-line CliError, code and message unchanged."""
    return CliError(exc.message, exc.code)
