"""`bakong openapi`: the node's Bakong Open API sandbox from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cli.client import NodeClient
from cli.errors import CliError
from cli.options import home_option, json_option, node_option, user_errors

REGISTERED_ALREADY = 8


class OpenApiRefused(CliError):
    """The Open API answered with `responseCode 1` (the message carries its errorCode)."""

    code = "openapi_refused"


def _call(client: NodeClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = client.request("POST", path, body=json.dumps(body).encode())
    if not isinstance(reply, dict) or "responseCode" not in reply:
        raise OpenApiRefused(f"{client.url}{path}: not an Open API answer")
    return reply


@click.group("openapi")
def openapi_group() -> None:
    """The Bakong Open API every node serves (docs/open-api.md): tokens for scripts."""


@openapi_group.command("token")
@click.option("--email", required=True, help="The developer's email (registered on first use).")
@click.option("--organization", default="bakong-sim", show_default=True, help="At registration.")
@click.option("--project", default="sandbox", show_default=True, help="At registration.")
@node_option
@json_option
@home_option
def token(
    email: str,
    organization: str,
    project: str,
    node_url: str | None,
    as_json: bool,
    home: Path,
) -> None:
    """Print a Bearer token for the Open API's transaction checks.

    The first time for EMAIL this registers it (`/v1/request_token`; the sandbox sends no
    mail) and also prints, on stderr, the one-time verification code `/v1/verify`
    accepts; later it renews (`/v1/renew_token`). Tokens are kept by the node that
    issued them (they survive restarts) and expire (node.toml `[openapi]
    token_ttl_ms`, 90 days by default). --json prints {"email", "token", "expires_ms",
    "verification_code" (null on renewal)}.
    """
    with user_errors():
        client = NodeClient(home, node_url)
        body = {"email": email, "organization": organization, "project": project}
        reply = _call(client, "/v1/request_token", body)
        if reply.get("errorCode") == REGISTERED_ALREADY:
            reply = _call(client, "/v1/renew_token", {"email": email})
        data = reply.get("data")
        if reply.get("responseCode") != 0 or not isinstance(data, dict):
            raise OpenApiRefused(
                f"errorCode {reply.get('errorCode')}: {reply.get('responseMessage')}"
            )
    code = data.get("verificationCode")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "email": email,
                    "token": data["token"],
                    "expires_ms": data.get("expiresMs"),
                    "verification_code": code,
                }
            )
        )
        return
    if code:
        click.echo(f"registered {email}; verification code for /v1/verify: {code}", err=True)
    click.echo(data["token"])
