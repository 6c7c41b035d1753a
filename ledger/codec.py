"""Canonical msgpack: one value, one encoding.

Containers encode as fixed-order arrays (never maps), integers in their shortest form,
strings as UTF-8 str, bytes as bin. Decoding is strict: trailing bytes, floats, maps,
extension types, oversize input and wrong shapes raise `CodecError` with a stable code.
The `expect_*` helpers are what every container's `from_obj` uses to check its fields.
"""

from __future__ import annotations

from typing import Any, NoReturn

import msgpack

from ledger.errors import CodecError

MAX_DECODE_BYTES = 64 * 1024 * 1024

_packer = msgpack.Packer(use_bin_type=True, strict_types=False, autoreset=True)


def pack(obj: Any) -> bytes:
    """Encode a tree of lists/tuples, ints, str, bytes, bool and None.

    One shared Packer: `packb` builds a new one per call, which costs 5x the packing
    of a small record. Sharing is safe across threads because packing these types runs
    in C without releasing the GIL, and a failed pack resets the buffer.
    """
    packed: bytes = _packer.pack(obj)
    return packed


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise CodecError(f"extension type {code} is not allowed", "wrong_type")


def _reject_map(pairs: Any) -> NoReturn:
    raise CodecError("maps are not allowed here", "wrong_type")


class _ArrayCounter:
    """A msgpack list_hook that refuses more than `limit` arrays in one value."""

    __slots__ = ("_left",)

    def __init__(self, limit: int) -> None:
        self._left = limit

    def __call__(self, items: list[Any]) -> list[Any]:
        self._left -= 1
        if self._left < 0:
            raise CodecError("too many arrays in one value", "oversize")
        return items


def unpack(
    data: bytes,
    max_size: int = MAX_DECODE_BYTES,
    *,
    max_arrays: int | None = None,
    max_array_len: int | None = None,
    allow_maps: bool = True,
) -> Any:
    """Decode one msgpack value that fills `data` exactly.

    A wire message from a peer passes `max_arrays`, `max_array_len` and
    `allow_maps=False`: an empty array is one byte on the wire and about 64 in memory, so
    a frame of them would decode to many times its size; the counts stop that early."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError("expected bytes", "wrong_type")
    if len(data) > max_size:
        raise CodecError(f"input of {len(data)} bytes exceeds {max_size}", "oversize")
    if len(data) == 0:
        raise CodecError("empty input", "truncated")
    options: dict[str, Any] = {}
    if max_arrays is not None:
        options["list_hook"] = _ArrayCounter(max_arrays)
    if max_array_len is not None:
        options["max_array_len"] = max_array_len
    if not allow_maps:
        options["object_pairs_hook"] = _reject_map
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_reject_ext,
            **options,
        )
    except msgpack.ExtraData as exc:
        raise CodecError("trailing bytes after the value", "trailing_bytes") from exc
    except CodecError:
        raise
    except (ValueError, msgpack.UnpackException, TypeError, RecursionError) as exc:
        # the library's own words (`max_map_len(2)`, ...) mean nothing to a client
        if "incomplete" in str(exc).lower():
            raise CodecError("not valid msgpack: the data ends early", "truncated") from exc
        raise CodecError("not valid msgpack", "malformed") from exc


def unpack_or_none(data: bytes) -> Any:
    """One msgpack value that fills `data` exactly, or None when it is not one: the
    first step of a decoder's fast path (`SignedTx.decode`), which checks the type of
    every leaf itself and leaves every refusal to the strict path and its error codes.
    Maps and extension types decode here; the caller's type checks refuse them."""
    try:
        return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except (ValueError, msgpack.UnpackException, TypeError, RecursionError):
        return None


def fail(message: str, code: str = "wrong_type") -> NoReturn:
    raise CodecError(message, code)


def expect_list(obj: Any, length: int | None = None, what: str = "value") -> list[Any]:
    if not isinstance(obj, list):
        fail(f"{what}: expected an array, got {type(obj).__name__}")
    if length is not None and len(obj) != length:
        fail(f"{what}: expected {length} fields, got {len(obj)}", "wrong_length")
    return obj


def expect_list_max(obj: Any, max_len: int, what: str = "value") -> list[Any]:
    items = expect_list(obj, None, what)
    if len(items) > max_len:
        fail(f"{what}: more than {max_len} items", "oversize")
    return items


def expect_int(obj: Any, lo: int = 0, hi: int = 2**64 - 1, what: str = "value") -> int:
    if type(obj) is not int:
        fail(f"{what}: expected an integer, got {type(obj).__name__}")
    if not lo <= obj <= hi:
        fail(f"{what}: {obj} out of range [{lo}, {hi}]", "out_of_range")
    return obj


def expect_bool(obj: Any, what: str = "value") -> bool:
    if type(obj) is not bool:
        fail(f"{what}: expected a boolean, got {type(obj).__name__}")
    return obj


def expect_bytes(obj: Any, size: int | None = None, what: str = "value") -> bytes:
    if not isinstance(obj, bytes):
        fail(f"{what}: expected bytes, got {type(obj).__name__}")
    if size is not None and len(obj) != size:
        fail(f"{what}: expected {size} bytes, got {len(obj)}", "wrong_length")
    return obj


def expect_bytes_max(obj: Any, max_len: int, what: str = "value") -> bytes:
    value = expect_bytes(obj, None, what)
    if len(value) > max_len:
        fail(f"{what}: longer than {max_len} bytes", "oversize")
    return value


def fits_utf8(value: str, max_bytes: int) -> bool:
    """`value` encodes to at most `max_bytes` of UTF-8 (a short one needs no encoding:
    a character is at most 4 bytes)."""
    return len(value) * 4 <= max_bytes or len(value.encode("utf-8", "surrogatepass")) <= max_bytes


def expect_str(obj: Any, max_len: int = 1024, what: str = "value") -> str:
    if not isinstance(obj, str):
        fail(f"{what}: expected a string, got {type(obj).__name__}")
    if not fits_utf8(obj, max_len):
        fail(f"{what}: longer than {max_len} bytes", "oversize")
    return obj


def expect_version(obj: Any, supported: int, what: str = "value") -> int:
    version = expect_int(obj, 0, 2**32, what + " version")
    if version != supported:
        fail(f"{what}: unknown version {version}", "unknown_version")
    return version
