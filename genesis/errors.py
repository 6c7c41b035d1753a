"""The genesis package's one exception: a bad document, named by its JSON path."""

from __future__ import annotations


class GenesisError(Exception):
    """The message starts with the JSON path of the bad field, e.g. `banks[2].node_key`.
    `code` is stable and part of the public contract."""

    code: str = "invalid_genesis"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message or self.code)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)
