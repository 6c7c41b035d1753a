"""One exception base for the node; every error carries a stable, machine-readable code."""

from __future__ import annotations

from ledger.errors import CodedError


class NodeError(CodedError):
    """Base of every node error. `code` is stable and part of the public contract."""

    code = "node_error"
