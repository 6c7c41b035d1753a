"""One exception base for the node; every error carries a stable, machine-readable code."""

from __future__ import annotations


class NodeError(Exception):
    """Base of every node error. `code` is stable and part of the public contract."""

    code: str = "node_error"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message or self.code)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)
