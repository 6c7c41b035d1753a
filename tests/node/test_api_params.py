"""The one parser of client numbers in the HTTP API (`node.api.parse_uint`)."""

from __future__ import annotations

import pytest

from node.api import MAX_UINT, ApiError, parse_uint

GOOD = [("0", 0), ("12", 12), ("007", 7), (str(2**63 - 1), 2**63 - 1)]
BAD = [
    "",
    "²",  # superscript two: str.isdigit() says yes, int() says no
    "١٢",  # Arabic-Indic twelve: int() reads it as 12
    "-1",
    "+1",
    " 1",
    "1 ",
    "1\n",
    "1e3",
    "1_000",
    "0x1",
    "1.0",
    str(2**63),
    "9" * 19,
    "9" * 5000,
]


@pytest.mark.parametrize(("text", "value"), GOOD)
def test_basic(text: str, value: int) -> None:
    assert parse_uint("limit", text) == value


@pytest.mark.parametrize("text", BAD)
def test_invalid_number(text: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_uint("limit", text)
    assert (caught.value.status, caught.value.code) == (400, "bad_parameter")
    assert "limit" in caught.value.message


def test_invalid_out_of_range() -> None:
    assert parse_uint("limit", "1000", 1, 1000) == 1000
    for text in ("0", "1001"):
        with pytest.raises(ApiError) as caught:
            parse_uint("limit", text, 1, 1000)
        assert caught.value.code == "bad_parameter"


def test_range_never_beyond_int64() -> None:
    with pytest.raises(ApiError):
        parse_uint("height", str(2**63), 0, 2**64)
    assert MAX_UINT == 2**63 - 1
