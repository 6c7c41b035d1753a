"""KHQR codec: the SDK vectors, round trips, tamper detection and one test per field rule."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError
from ledger.ids import AccountId
from ledger.khqr import (
    KHQR,
    AdditionalData,
    AlternateLanguage,
    KHQRError,
    crc16_ccitt_false,
    decode_khqr,
    encode_khqr,
    format_khqr_amount,
    is_expired,
    khqr_md5,
)

VECTOR_INDIVIDUAL = (
    "00020101021129190015sokha_chan@aclb5204599953031165802KH5910Sokha Chan6010Phnom Penh6304F4AE"
)
VECTOR_MERCHANT = (
    "00020101021230460016coffee_shop@wing01091234567890209Wing Bank52045999530311654051500"
    "05802KH5913Angkor Coffee6009Siem Reap62440113INV-2026-00010313Angkor Coffee0706POS-01"
    "99340013176722560000001131767312000000"
    "63041AE3"
)
CREATED_MS = 1767225600000
EXPIRES_MS = 1767312000000

INDIVIDUAL = KHQR(
    account_id=AccountId("sokha_chan@aclb"),
    merchant_name="Sokha Chan",
    merchant_city="Phnom Penh",
    currency="KHR",
)
MERCHANT = KHQR(
    account_id=AccountId("coffee_shop@wing"),
    merchant_name="Angkor Coffee",
    merchant_city="Siem Reap",
    currency="KHR",
    amount=15000,
    merchant_id="123456789",
    acquiring_bank="Wing Bank",
    additional=AdditionalData(
        bill_number="INV-2026-0001", store_label="Angkor Coffee", terminal_label="POS-01"
    ),
    created_ms=CREATED_MS,
    expires_ms=EXPIRES_MS,
)

# The merchant vector as (tag, value) pairs, CRC left out: tests tamper with one field and
# seal the result with a correct CRC so that the field rule, not the CRC, is what fails.
MERCHANT_FIELDS = [
    ("00", "01"),
    ("01", "12"),
    ("30", "0016coffee_shop@wing01091234567890209Wing Bank"),
    ("52", "5999"),
    ("53", "116"),
    ("54", "15000"),
    ("58", "KH"),
    ("59", "Angkor Coffee"),
    ("60", "Siem Reap"),
    ("62", "0113INV-2026-00010313Angkor Coffee0706POS-01"),
    ("99", "0013" + str(CREATED_MS) + "0113" + str(EXPIRES_MS)),
]
KHMER_NAME = "ហាងកាហ្វេ អង្គរ"
KHMER_CITY = "សៀមរាប"


def seal(body: str) -> str:
    """Close a body with `6304` and its correct CRC."""
    head = body + "6304"
    return head + f"{crc16_ccitt_false(head.encode('utf-8')):04X}"


def tlv(tag: str, value: str) -> str:
    return f"{tag}{len(value):02d}{value}"


def build(pairs: list[tuple[str, str]]) -> str:
    return seal("".join(tlv(tag, value) for tag, value in pairs))


def with_field(tag: str, value: str | None) -> str:
    """The merchant vector with one field replaced (or dropped when value is None)."""
    pairs = [(t, value if t == tag else v) for t, v in MERCHANT_FIELDS]
    return build([(t, v) for t, v in pairs if v is not None])


def with_extra(tag: str, value: str) -> str:
    return build(sorted([*MERCHANT_FIELDS, (tag, value)], key=lambda pair: pair[0]))


def error_code(text: str, now_ms: int | None = None) -> str:
    with pytest.raises(KHQRError) as info:
        decode_khqr(text, now_ms)
    return info.value.code


def encode_error(code: KHQR) -> str:
    with pytest.raises(KHQRError) as info:
        encode_khqr(code)
    return info.value.code


# Strategies: every generated code is valid, and its templates fit the 99-character limit.
ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
KHMER = st.characters(min_codepoint=0x1780, max_codepoint=0x17FF)


def texts(max_size: int, alphabet: st.SearchStrategy[str] = ASCII) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=1, max_size=max_size)


def optional(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.none() | strategy


ACCOUNTS = st.builds(
    lambda name, bank: AccountId(f"{name}@{bank}"),
    st.from_regex(r"[a-z0-9_]{1,20}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{2,11}", fullmatch=True),
)
ADDITIONAL = st.builds(
    AdditionalData,
    bill_number=optional(texts(15)),
    mobile_number=optional(st.from_regex(r"[0-9]{8,15}", fullmatch=True)),
    store_label=optional(texts(15)),
    terminal_label=optional(texts(15)),
    purpose=optional(texts(15)),
)


def alternates(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[AlternateLanguage]:
    return st.builds(
        AlternateLanguage,
        language=st.sampled_from(["km", "en", "ZH"]),
        name=texts(25, alphabet),
        city=optional(texts(15, alphabet)),
    )


@st.composite
def khqr_codes(draw: st.DrawFn, alt_alphabet: st.SearchStrategy[str] = KHMER | ASCII) -> KHQR:
    currency = draw(st.sampled_from(["KHR", "USD"]))
    top = 10**13 - 1 if currency == "KHR" else 10**12 - 1
    amount = draw(st.none() | st.integers(1, top))
    created = draw(st.none() | st.integers(10**12, 10**13 - 2))
    if amount is not None and created is None:
        created = draw(st.integers(10**12, 10**13 - 2))
    expires = None if created is None else draw(st.none() | st.integers(created + 1, 10**13 - 1))
    if amount is not None and expires is None:
        expires = draw(st.integers(created + 1, 10**13 - 1))
    is_merchant = draw(st.booleans())
    return KHQR(
        account_id=draw(ACCOUNTS),
        merchant_name=draw(texts(25)),
        merchant_city=draw(texts(15)),
        currency=currency,
        amount=amount,
        merchant_id=draw(texts(20)) if is_merchant else None,
        account_information=None if is_merchant else draw(optional(texts(20))),
        acquiring_bank=draw(texts(20) if is_merchant else optional(texts(20))),
        mcc=draw(st.from_regex(r"[0-9]{4}", fullmatch=True)),
        country=draw(st.sampled_from(["KH", "TH", "SG"])),
        additional=draw(ADDITIONAL),
        alternate_language=draw(st.none() | alternates(alt_alphabet)),
        created_ms=created,
        expires_ms=expires,
    )


# Primitives.


def test_crc16_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


def test_md5_is_hex_md5_of_the_whole_code() -> None:
    assert khqr_md5(VECTOR_MERCHANT) == hashlib.md5(VECTOR_MERCHANT.encode()).hexdigest()
    assert khqr_md5(VECTOR_MERCHANT) != khqr_md5(VECTOR_INDIVIDUAL)


def test_amount_formatting() -> None:
    assert format_khqr_amount(15000, "KHR") == "15000"
    assert format_khqr_amount(1250, "USD") == "12.50"
    assert format_khqr_amount(1205, "USD") == "12.05"
    assert format_khqr_amount(1200, "USD") == "12"
    assert format_khqr_amount(5, "USD") == "0.05"


def test_error_is_a_ledger_error() -> None:
    assert issubclass(KHQRError, LedgerError)


# The official SDK vectors.


def test_vector_individual_decodes() -> None:
    code = decode_khqr(VECTOR_INDIVIDUAL)
    assert code == INDIVIDUAL
    assert not code.is_dynamic
    assert not code.is_merchant


def test_vector_individual_reencodes_byte_for_byte() -> None:
    assert encode_khqr(INDIVIDUAL) == VECTOR_INDIVIDUAL


def test_vector_merchant_decodes() -> None:
    code = decode_khqr(VECTOR_MERCHANT, now_ms=CREATED_MS)
    assert code == MERCHANT
    assert code.is_dynamic
    assert code.is_merchant


def test_vector_merchant_reencodes_byte_for_byte() -> None:
    assert encode_khqr(MERCHANT) == VECTOR_MERCHANT
    assert build(MERCHANT_FIELDS) == VECTOR_MERCHANT


# Round trips.


def test_basic() -> None:
    code = dataclasses.replace(MERCHANT, currency="USD", amount=1250)
    text = encode_khqr(code)
    assert "540512.50" in text
    assert decode_khqr(text) == code


def test_usd_whole_amount_is_written_bare() -> None:
    text = encode_khqr(dataclasses.replace(MERCHANT, currency="USD", amount=1200))
    assert "5303840540212" in text
    assert decode_khqr(text).amount == 1200


def test_usd_amounts_from_other_writers_decode() -> None:
    """Some SDK versions always write 2 decimals or drop a trailing zero; both mean cents."""
    usd = [(t, "840" if t == "53" else v) for t, v in MERCHANT_FIELDS]
    for written, cents in (("12.00", 1200), ("12.5", 1250), ("0.05", 5)):
        pairs = [(t, written if t == "54" else v) for t, v in usd]
        assert decode_khqr(build(pairs)).amount == cents


def test_khmer_alternate_language_round_trip() -> None:
    code = dataclasses.replace(
        MERCHANT, alternate_language=AlternateLanguage("km", KHMER_NAME, KHMER_CITY)
    )
    text = encode_khqr(code)
    inner = tlv("00", "km") + tlv("01", KHMER_NAME) + tlv("02", KHMER_CITY)
    # lengths count characters, not UTF-8 bytes
    assert tlv("64", inner) in text
    assert f"0115{KHMER_NAME}" in text
    assert len(KHMER_NAME.encode()) != len(KHMER_NAME)
    # the CRC runs over the UTF-8 bytes
    assert text[-4:] == f"{crc16_ccitt_false(text[:-4].encode('utf-8')):04X}"
    assert decode_khqr(text) == code


def test_sdk_style_chinese_alternate_language_decodes() -> None:
    alt = tlv("00", "ZH") + tlv("01", "文山") + tlv("02", "金边")
    code = decode_khqr(with_extra("64", alt))
    assert code.alternate_language == AlternateLanguage("ZH", "文山", "金边")


def test_static_code_may_carry_creation_time_only() -> None:
    code = dataclasses.replace(INDIVIDUAL, created_ms=CREATED_MS)
    assert decode_khqr(encode_khqr(code), now_ms=10**13 - 1) == code


@settings(max_examples=300, deadline=None)
@given(khqr_codes())
def test_encode_then_decode_is_identity(code: KHQR) -> None:
    text = encode_khqr(code)
    assert decode_khqr(text) == code
    assert encode_khqr(decode_khqr(text)) == text


@settings(max_examples=300, deadline=None)
@given(khqr_codes(alt_alphabet=KHMER), st.data())
def test_any_single_character_change_is_refused(code: KHQR, data: st.DataObject) -> None:
    """ASCII may become ASCII or Khmer, Khmer may become other Khmer.

    ASCII-for-ASCII and Khmer-for-Khmer alter at most 16 consecutive bits of the UTF-8
    text, which CRC-16/CCITT-FALSE always detects; Khmer in place of ASCII lands where only
    ASCII is allowed (these codes keep tag 64 text pure Khmer). A change of UTF-8 width
    inside tag 64 text is caught only with probability 1 - 2**-16, as in any CRC-16 code,
    so it is not generated here.
    """
    text = encode_khqr(code)
    pos = data.draw(st.integers(0, len(text) - 1))
    alphabet = KHMER if text[pos] > "~" else ASCII | KHMER
    new = data.draw(alphabet.filter(lambda ch: ch != text[pos]))
    with pytest.raises(KHQRError):
        decode_khqr(text[:pos] + new + text[pos + 1 :])


def test_every_ascii_substitution_of_the_vectors_is_refused() -> None:
    printable = [chr(point) for point in range(0x20, 0x7F)]
    for text in (VECTOR_INDIVIDUAL, VECTOR_MERCHANT):
        for pos, old in enumerate(text):
            for new in printable:
                if new != old:
                    with pytest.raises(KHQRError):
                        decode_khqr(text[:pos] + new + text[pos + 1 :])


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_raises_only_khqr_error(text: str) -> None:
    with contextlib.suppress(KHQRError):
        decode_khqr(text)


TAGS = st.sampled_from(["00", "01", "15", "29", "30", "52", "53", "54", "58", "59", "60", "62"])
VALUES = st.text(
    st.sampled_from("0123456789.@_ aKH\u1780"), min_size=1, max_size=12
) | st.sampled_from(["01", "11", "12", "116", "840", "KH", "5999", "0008ab@cd", "0113INV"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(TAGS, VALUES), max_size=12))
def test_sealed_field_soup_raises_only_khqr_error(pairs: list[tuple[str, str]]) -> None:
    """Fields with a correct CRC reach past the CRC check into every field rule."""
    text = build(pairs)
    try:
        code = decode_khqr(text)
    except KHQRError:
        return
    assert encode_khqr(code) == text


@settings(max_examples=300, deadline=None)
@given(khqr_codes(), st.data())
def test_resealed_edits_raise_only_khqr_error(code: KHQR, data: st.DataObject) -> None:
    """One edit to a valid body, resealed with a correct CRC, reaches every field rule."""
    body = encode_khqr(code)[:-8]
    pos = data.draw(st.integers(0, len(body)))
    new = data.draw(st.sampled_from(["", "0", "9", "1", ".", "@", " ", "\u1780", "\x00"]))
    cut = data.draw(st.integers(0, 2))
    text = seal(body[:pos] + new + body[pos + cut :])
    try:
        decoded = decode_khqr(text)
    except KHQRError:
        return
    # only USD amounts have other spellings (12.5, 12.00); everything else has one
    if decoded.currency == "KHR":
        assert encode_khqr(decoded) == text
    assert decode_khqr(encode_khqr(decoded)) == decoded


# Expiry.


def test_expiry_is_checked_only_when_now_is_given() -> None:
    assert decode_khqr(VECTOR_MERCHANT, now_ms=EXPIRES_MS - 1) == MERCHANT
    assert decode_khqr(VECTOR_MERCHANT) == MERCHANT
    assert is_expired(MERCHANT, EXPIRES_MS)
    assert not is_expired(INDIVIDUAL, 10**13)


def test_invalid_expired() -> None:
    assert error_code(VECTOR_MERCHANT, now_ms=EXPIRES_MS) == "expired"
    assert error_code(VECTOR_MERCHANT, now_ms=EXPIRES_MS + 60_000) == "expired"


# One test per decoder rule.


def test_invalid_bad_crc() -> None:
    assert error_code(VECTOR_INDIVIDUAL[:-1] + "F") == "bad_crc"
    assert error_code(VECTOR_MERCHANT.replace("Siem Reap", "Siem Raep")) == "bad_crc"


def test_invalid_lowercase_crc() -> None:
    assert error_code(VECTOR_INDIVIDUAL[:-4] + "f4ae") == "bad_crc"


def test_invalid_crc_not_hex() -> None:
    assert error_code(VECTOR_INDIVIDUAL[:-4] + "F4AG") == "bad_crc"


def test_invalid_crc_length() -> None:
    assert error_code(VECTOR_INDIVIDUAL[:-8] + "6303F4A") == "bad_length"


def test_invalid_wrong_order() -> None:
    pairs = list(MERCHANT_FIELDS)
    pairs[6], pairs[7] = pairs[7], pairs[6]
    assert error_code(build(pairs)) == "wrong_order"


def test_invalid_wrong_order_of_sub_tags() -> None:
    assert error_code(with_field("62", "0313Angkor Coffee0113INV-2026-0001")) == "wrong_order"


def test_invalid_crc_not_last() -> None:
    head = "".join(tlv(t, v) for t, v in MERCHANT_FIELDS[:-1])
    assert error_code(seal(head) + tlv(*MERCHANT_FIELDS[-1])) == "wrong_order"


def test_invalid_missing_tag() -> None:
    assert error_code(with_field("59", None)) == "missing_tag"
    assert error_code(with_field("30", None)) == "missing_tag"


def test_invalid_missing_crc() -> None:
    assert error_code(VECTOR_INDIVIDUAL[:-8]) == "missing_tag"


def test_invalid_missing_sub_tag() -> None:
    assert error_code(with_field("30", "0016coffee_shop@wing0109123456789")) == "missing_tag"


def test_invalid_dynamic_without_amount() -> None:
    assert error_code(with_field("54", None)) == "missing_tag"


def test_invalid_static_with_amount() -> None:
    assert error_code(with_field("01", "11")) == "bad_amount"


def test_invalid_duplicate_tag() -> None:
    assert error_code(with_extra("59", "Angkor Coffee")) == "duplicate_tag"
    assert error_code(with_field("62", "0113INV-2026-00010113INV-2026-0002")) == "duplicate_tag"


def test_invalid_duplicate_crc() -> None:
    head = "".join(tlv(t, v) for t, v in MERCHANT_FIELDS)
    assert error_code(seal(head + "63041AE3")) == "duplicate_tag"


def test_invalid_unknown_tag() -> None:
    assert error_code(with_extra("15", "upi-merchant")) == "unknown_tag"
    assert error_code(with_field("62", "0113INV-2026-00010506ABCDEF")) == "unknown_tag"


def test_invalid_both_account_templates() -> None:
    assert error_code(with_extra("29", "0015sokha_chan@aclb")) == "malformed"


def test_invalid_too_long() -> None:
    assert error_code(with_field("59", "A" * 26)) == "too_long"
    assert error_code(with_field("60", "B" * 16)) == "too_long"
    assert error_code(with_field("62", tlv("01", "X" * 26))) == "too_long"


def test_invalid_amount_too_long() -> None:
    assert error_code(with_field("54", "1" * 14)) == "too_long"


def test_invalid_khr_decimals() -> None:
    assert error_code(with_field("54", "15000.5")) == "khr_decimals"
    assert error_code(with_field("54", "15000.0")) == "khr_decimals"


def test_invalid_unsupported_currency() -> None:
    assert error_code(with_field("53", "764")) == "unsupported_currency"


def test_invalid_bad_amount() -> None:
    assert error_code(with_field("54", "1,000")) == "bad_amount"
    assert error_code(with_field("54", "0")) == "bad_amount"
    assert error_code(with_field("54", "12.")) == "bad_amount"
    assert error_code(with_field("54", "015000")) == "bad_amount"


def test_invalid_usd_amount_with_three_decimals() -> None:
    usd = [(t, "840" if t == "53" else v) for t, v in MERCHANT_FIELDS]
    assert error_code(build([(t, "12.505" if t == "54" else v) for t, v in usd])) == "bad_amount"


def test_invalid_malformed_structure() -> None:
    assert error_code("") == "missing_tag"
    assert error_code("0002") == "bad_length"
    assert error_code("00") == "malformed"
    assert error_code("0A0201" + VECTOR_INDIVIDUAL[6:]) == "malformed"


def test_invalid_malformed_characters() -> None:
    assert error_code(VECTOR_INDIVIDUAL.replace("Sokha Chan", "Sokha\x00Chan")) == "malformed"
    assert error_code("\ud800") == "malformed"
    assert error_code(with_field("59", "ហាងកាហ្វេ")) == "malformed"


def test_invalid_malformed_values() -> None:
    assert error_code(with_field("00", "02")) == "malformed"
    assert error_code(with_field("01", "13")) == "malformed"
    assert error_code(with_field("52", "59A9")) == "malformed"
    assert error_code(with_field("58", "kh")) == "malformed"


def test_invalid_bad_length() -> None:
    assert error_code(VECTOR_INDIVIDUAL.replace("5910Sokha", "5999Sokha")) == "bad_length"
    assert error_code(with_field("62", "0100")) == "bad_length"


def test_invalid_timestamp_length() -> None:
    assert error_code(with_field("99", tlv("00", "176722560000"))) == "bad_length"


def test_invalid_timestamp_characters() -> None:
    assert error_code(with_field("99", tlv("00", "176722560000X"))) == "malformed"


def test_invalid_missing_expiry() -> None:
    assert error_code(with_field("99", tlv("00", str(CREATED_MS)))) == "missing_expiry"
    assert error_code(with_field("99", None)) == "missing_expiry"


def test_invalid_bad_timestamp() -> None:
    assert (
        error_code(with_field("99", tlv("00", str(EXPIRES_MS)) + tlv("01", str(CREATED_MS))))
        == "bad_timestamp"
    )


def test_invalid_bad_account() -> None:
    assert error_code(with_field("30", "0011coffee_shop01091234567890209Wing Bank")) == (
        "bad_account"
    )


# One test per encoder rule (the decoder shares them; these check the encoder refuses too).


def test_invalid_encode_unsupported_currency() -> None:
    assert encode_error(dataclasses.replace(INDIVIDUAL, currency="THB")) == "unsupported_currency"


def test_invalid_encode_bad_amount() -> None:
    assert encode_error(dataclasses.replace(MERCHANT, amount=0)) == "bad_amount"
    assert encode_error(dataclasses.replace(MERCHANT, amount=150.0)) == "bad_amount"
    assert encode_error(dataclasses.replace(MERCHANT, amount=True)) == "bad_amount"


def test_invalid_encode_too_long() -> None:
    assert encode_error(dataclasses.replace(INDIVIDUAL, merchant_name="A" * 26)) == "too_long"
    assert encode_error(dataclasses.replace(MERCHANT, amount=10**13)) == "too_long"
    alt = AlternateLanguage("km", "ក" * 26)
    assert encode_error(dataclasses.replace(MERCHANT, alternate_language=alt)) == "too_long"


def test_invalid_encode_template_too_long() -> None:
    account = AccountId("m" * 27 + "@wing")
    code = dataclasses.replace(MERCHANT, account_id=account, merchant_id="M" * 32)
    code = dataclasses.replace(code, acquiring_bank="B" * 32)
    assert encode_error(code) == "too_long"


def test_invalid_encode_missing_expiry() -> None:
    assert encode_error(dataclasses.replace(MERCHANT, expires_ms=None)) == "missing_expiry"


def test_invalid_encode_expiry_without_creation() -> None:
    assert encode_error(dataclasses.replace(MERCHANT, created_ms=None)) == "missing_tag"


def test_invalid_encode_bad_timestamp() -> None:
    assert encode_error(dataclasses.replace(MERCHANT, expires_ms=CREATED_MS)) == "bad_timestamp"
    assert encode_error(dataclasses.replace(MERCHANT, created_ms=123)) == "bad_timestamp"


def test_invalid_encode_bad_account() -> None:
    code = dataclasses.replace(INDIVIDUAL, account_id=AccountId("Sokha@aclb"))
    assert encode_error(code) == "bad_account"


def test_invalid_encode_merchant_without_acquiring_bank() -> None:
    assert encode_error(dataclasses.replace(MERCHANT, acquiring_bank=None)) == "missing_tag"


def test_invalid_encode_merchant_with_account_information() -> None:
    code = dataclasses.replace(MERCHANT, account_information="acct")
    assert encode_error(code) == "malformed"


def test_invalid_encode_empty_text() -> None:
    assert encode_error(dataclasses.replace(INDIVIDUAL, merchant_city="")) == "malformed"
    extra = AdditionalData(bill_number="")
    assert encode_error(dataclasses.replace(INDIVIDUAL, additional=extra)) == "malformed"


def test_invalid_encode_non_ascii_outside_tag_64() -> None:
    assert encode_error(dataclasses.replace(INDIVIDUAL, merchant_name=KHMER_NAME)) == "malformed"


def test_invalid_encode_language() -> None:
    alt = AlternateLanguage("khm", KHMER_NAME)
    assert encode_error(dataclasses.replace(MERCHANT, alternate_language=alt)) == "malformed"


def test_invalid_encode_outside_bmp() -> None:
    alt = AlternateLanguage("km", "Cafe \U0001f375")
    assert encode_error(dataclasses.replace(MERCHANT, alternate_language=alt)) == "malformed"
