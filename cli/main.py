"""The `bakong` command: parse arguments, call into node/ or the HTTP API, print."""

from __future__ import annotations

import sys

import click

from cli.admin import bank_group, validator_group
from cli.bench.command import bench
from cli.errors import LAYER_ERRORS, CliError
from cli.explorer import explorer
from cli.extras import accounts, assets, completion, logs
from cli.fx import fx_group
from cli.keys import keys
from cli.khqr import khqr_group
from cli.node_cmd import node
from cli.openapi import openapi_group
from cli.options import cacert_option
from cli.pay import pay
from cli.query import balance
from cli.testnet import testnet
from cli.txcmds import account_group, freeze, issue, redeem, transfer, tx_group, unfreeze


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bakong-sim")
@cacert_option
def cli() -> None:
    """bakong-sim: a Bakong-style permissioned payment network on your machine.

    Start a local testnet with `bakong testnet init` and `bakong testnet up`, then
    issue, transfer and inspect the chain. Every command takes --help. HTTPS nodes
    (`testnet init --tls`) are always verified: see --cacert.
    """


def main() -> None:
    """Console entry point: never lets a traceback reach the user."""
    try:
        status = cli.main(standalone_mode=False, prog_name="bakong")
    except click.exceptions.NoArgsIsHelpError as exc:
        # `bakong` or `bakong tx` alone asks what there is: the help, on stdout, exit 0
        click.echo(exc.ctx.get_help() if exc.ctx else "")
        sys.exit(0)
    except click.exceptions.Abort:
        click.echo("error: aborted: interrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        click.echo(f"error: usage: {exc.format_message()}", err=True)
        sys.exit(2)
    except CliError as exc:
        exc.show()
        sys.exit(exc.exit_code or 1)
    except click.ClickException as exc:
        click.echo(f"error: {getattr(exc, 'code', 'failed')}: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code or 1)
    except LAYER_ERRORS as exc:  # ledger, consensus, genesis and node errors
        click.echo(f"error: {exc.code}: {exc.message}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("error: aborted: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(f"error: os_error: {exc}", err=True)
        sys.exit(1)
    if isinstance(status, int) and status:
        sys.exit(status)


cli.add_command(keys)
cli.add_command(testnet)
cli.add_command(node)
cli.add_command(bench)
cli.add_command(account_group)
cli.add_command(issue)
cli.add_command(redeem)
cli.add_command(transfer)
cli.add_command(freeze)
cli.add_command(unfreeze)
cli.add_command(tx_group)
cli.add_command(balance)
cli.add_command(explorer)
cli.add_command(khqr_group)
cli.add_command(pay)
cli.add_command(fx_group)
cli.add_command(openapi_group)
cli.add_command(bank_group)
cli.add_command(validator_group)
cli.add_command(assets)
cli.add_command(accounts)
cli.add_command(logs)
cli.add_command(completion)


if __name__ == "__main__":
    main()
