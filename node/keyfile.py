"""Key files on disk: an unencrypted Ed25519 key as JSON (node keys, development wallets).

File I/O lives here, in the node, not in the ledger, which reads no file, clock or socket.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ledger.crypto import PrivateKey
from ledger.errors import KeyFileError


def write_key_file(path: Path, key: PrivateKey) -> None:
    """Write an unencrypted key file (node keys, development wallets) with mode 0600."""
    data = json.dumps(
        {"type": "ed25519", "public_key": key.public_key.hex(), "seed": key.seed.hex()}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data + "\n")


def read_key_file(path: Path) -> PrivateKey:
    try:
        raw = json.loads(path.read_text())
        key = PrivateKey(bytes.fromhex(raw["seed"]))
        expected = bytes.fromhex(raw["public_key"])
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file not found: {path}", "key_not_found") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from exc
    if key.public_key != expected:
        raise KeyFileError(f"key file {path}: public key does not match the seed")
    return key
