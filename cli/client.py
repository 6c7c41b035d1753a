"""The node HTTP API's endpoints for commands, with node selection and fail-over (the
transport is `cli.http`).

Without `--node`, the candidates are the nodes of the testnet home's manifest in order;
the first that answers serves the whole command (so the nonce read, the submission and
the wait see the same mempool), and a node that stops answering mid-command hands over
to the next. A node that answers with an error is not failed over: its answer stands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from cli import http
from cli.devnet.testnet import load_manifest
from cli.http import NodeReplyError, NodeUnreachable, parse_error_body, parse_node_url

__all__ = [
    "NodeClient",
    "NodeReplyError",
    "NodeUnreachable",
    "parse_error_body",
    "parse_node_url",
]

DEFAULT_TIMEOUT_S: Final = 10.0
# The node caps a long-poll at 60 s; the socket must outlast the poll.
MAX_WAIT_MS: Final = 60_000
_POLL_MARGIN_S: Final = 5.0


class NodeClient:
    """The nodes one command may talk to. Candidate URLs are resolved on first use, so a
    command that never needs a node (e.g. `--offline --nonce N`) needs no testnet."""

    def __init__(self, home: Path, node_url: str | None, timeout: float = DEFAULT_TIMEOUT_S):
        self._home = home
        self._node_url = node_url
        self._timeout = timeout
        self._urls: list[str] | None = None

    @property
    def urls(self) -> list[str]:
        """Candidates, the one that last answered first."""
        if self._urls is None:
            if self._node_url:
                self._urls = [parse_node_url(self._node_url)]
            else:
                self._urls = [node.http_url for node in load_manifest(self._home).nodes]
        return self._urls

    @property
    def url(self) -> str:
        return self.urls[0]

    # Endpoints.
    def get_status(self) -> dict[str, Any]:
        return self._get_object("/v1/status")

    def get_assets(self) -> dict[str, int]:
        """Asset code -> decimals, as the node's ledger defines them."""
        body = self._get_object("/v1/assets")
        return {a["code"]: a["decimals"] for a in body.get("assets", [])}

    def get_account(self, account: str) -> dict[str, Any]:
        return self._get_object(f"/v1/accounts/{http.quote(account)}")

    def get_account_transactions(
        self, account: str, limit: int, before: str | None = None
    ) -> dict[str, Any]:
        query = {"limit": limit} | ({"before": before} if before else {})
        return self._get_object(f"/v1/accounts/{http.quote(account)}/transactions", query)

    def submit_tx(self, raw: bytes) -> str:
        """POST the signed tx; the node's refusal (4xx) raises NodeReplyError with its code."""
        body = json.dumps({"tx": raw.hex()}).encode()
        reply = self.request("POST", "/v1/transactions", body=body)
        return str(reply["hash"])

    def get_tx(self, tx_hash: str, wait_ms: int = 0) -> dict[str, Any]:
        wait_ms = max(0, min(wait_ms, MAX_WAIT_MS))
        return self._get_object(
            f"/v1/transactions/{http.quote(tx_hash)}",
            {"wait_ms": wait_ms},
            timeout=self._timeout + wait_ms / 1000 + _POLL_MARGIN_S,
        )

    def get_blocks(self, limit: int, start: int | None = None) -> dict[str, Any]:
        query = {"limit": limit} | ({"from": start} if start is not None else {})
        return self._get_object("/v1/blocks", query)

    def get_block(self, ref: str) -> dict[str, Any]:
        return self._get_object(f"/v1/blocks/{http.quote(ref)}")

    # Transport.
    def _get_object(
        self, path: str, query: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        path = http.with_query(path, query)
        reply = self.request("GET", path, timeout=timeout)
        if not isinstance(reply, dict):
            raise NodeReplyError(f"{self.url}{path}: expected a JSON object", "bad_response")
        return reply

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float | None = None
    ) -> Any:
        """Send to the first candidate that answers; `node_unreachable` if none does."""
        failures: list[tuple[str, str]] = []
        for index, url in enumerate(self.urls):
            try:
                reply = http.send(method, url + path, body, timeout=timeout or self._timeout)
            except NodeUnreachable as exc:
                failures.append((url, exc.reason))
                continue
            # remember who answered: the rest of the command talks to it first
            self.urls.insert(0, self.urls.pop(index))
            return reply
        raise NodeUnreachable(self._describe_failures(failures))

    def _describe_failures(self, failures: list[tuple[str, str]]) -> str:
        """One line: which nodes were tried, why they did not answer (alike ones grouped),
        and what to do about it."""
        by_reason: dict[str, list[str]] = {}
        for url, reason in failures:
            by_reason.setdefault(reason, []).append(url.split("://", 1)[-1])
        tried = "; ".join(f"{', '.join(urls)}: {reason}" for reason, urls in by_reason.items())
        if self._node_url:
            hint = "check the --node URL (or BAKONG_NODE)"
        else:
            hint = f"is the testnet running? start it with: bakong testnet up --home {self._home}"
        count = len(failures)
        return f"no node answers ({count} tried: {tried}); {hint}"
