"""The genesis package's one exception: a bad document, named by its JSON path."""

from __future__ import annotations

from ledger.errors import CodedError


class GenesisError(CodedError):
    """The message starts with the JSON path of the bad field, e.g. `banks[2].node_key`.
    `code` is stable and part of the public contract."""

    code = "invalid_genesis"
