"""Ed25519 keys (PyNaCl), sha256, and domain-separated signing roots.

A signature always covers `signing_root(domain, payload)`, never raw bytes, so a
signature made for one purpose (a vote) can never be replayed as another (a transaction).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.signing

from ledger.constants import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from ledger.errors import KeyFileError


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def signing_root(domain: bytes, payload: bytes) -> bytes:
    """sha256(domain || sha256(payload)): what every signature in the system covers."""
    return hashlib.sha256(domain + hashlib.sha256(payload).digest()).digest()


def signing_root_of_hash(domain: bytes, payload_hash: bytes) -> bytes:
    """Same as `signing_root` when sha256(payload) is already known (e.g. a tx hash)."""
    return hashlib.sha256(domain + payload_hash).digest()


def verify_root(public_key: bytes, root: bytes, signature: bytes) -> bool:
    """Check an Ed25519 signature over a signing root. Never raises on bad input."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + root, public_key)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """An Ed25519 signing key. `seed` is the 32-byte secret."""

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise KeyFileError("an Ed25519 seed is 32 bytes")

    @staticmethod
    def generate() -> PrivateKey:
        return PrivateKey(bytes(nacl.signing.SigningKey.generate()))

    @staticmethod
    def from_seed(seed: bytes) -> PrivateKey:
        return PrivateKey(seed)

    @property
    def public_key(self) -> bytes:
        return _public_key_of(self.seed)

    def sign_root(self, root: bytes) -> bytes:
        return _signing_key_of(self.seed).sign(root).signature

    def sign(self, domain: bytes, payload: bytes) -> bytes:
        return self.sign_root(signing_root(domain, payload))

    def __repr__(self) -> str:
        return f"PrivateKey(public_key={self.public_key.hex()})"


_KEY_CACHE: dict[bytes, nacl.signing.SigningKey] = {}


def _signing_key_of(seed: bytes) -> nacl.signing.SigningKey:
    key = _KEY_CACHE.get(seed)
    if key is None:
        if len(_KEY_CACHE) > 4096:
            _KEY_CACHE.clear()
        key = nacl.signing.SigningKey(seed)
        _KEY_CACHE[seed] = key
    return key


def _public_key_of(seed: bytes) -> bytes:
    return bytes(_signing_key_of(seed).verify_key)
