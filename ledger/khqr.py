"""KHQR payment codes: the EMVCo merchant-presented payload that Bakong apps scan and pay.

A code is a run of TLV fields `tag(2) length(2, decimal) value`, tags ascending, with the
CRC (tag 63) always last. Lengths count characters while the CRC runs over the UTF-8
bytes, as in NBC's SDK; only the alternate-language template (tag 64) may hold non-ASCII
text. The codec is pure: the current time is a parameter of `decode_khqr`.

Error codes (`KHQRError.code`): malformed, bad_length, bad_crc, wrong_order, duplicate_tag,
unknown_tag, missing_tag, too_long, bad_account, unsupported_currency, bad_amount,
khr_decimals, missing_expiry, bad_timestamp, expired.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from ledger.errors import LedgerError
from ledger.ids import AccountId, format_time_ms, is_account_id


class KHQRError(LedgerError):
    """A KHQR code that cannot be read or breaks a field rule; `code` says which rule."""

    code = "malformed"


@dataclass(frozen=True, slots=True)
class AdditionalData:
    """Tag 62. All empty means the code carries no tag 62."""

    bill_number: str | None = None
    mobile_number: str | None = None
    store_label: str | None = None
    terminal_label: str | None = None
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class AlternateLanguage:
    """Tag 64: the merchant's name and city in the payer's language (Khmer: `km`)."""

    language: str
    name: str
    city: str | None = None


@dataclass(frozen=True, slots=True)
class KHQR:
    """One decoded code. A code is dynamic exactly when it carries an amount.

    A merchant code (tag 30) has a merchant id; an individual code (tag 29) has none.
    `amount` is in minor units of `currency` (KHR 0 decimals, USD 2).
    """

    account_id: AccountId
    merchant_name: str
    merchant_city: str
    currency: str
    amount: int | None = None
    merchant_id: str | None = None
    account_information: str | None = None
    acquiring_bank: str | None = None
    mcc: str = "5999"
    country: str = "KH"
    additional: AdditionalData = field(default_factory=AdditionalData)
    alternate_language: AlternateLanguage | None = None
    created_ms: int | None = None
    expires_ms: int | None = None

    @property
    def is_dynamic(self) -> bool:
        return self.amount is not None

    @property
    def is_merchant(self) -> bool:
        return self.merchant_id is not None


CURRENCY_NUMERIC: Final = {"KHR": "116", "USD": "840"}
CURRENCY_DECIMALS: Final = {"KHR": 0, "USD": 2}

TAG_PAYLOAD_FORMAT: Final = "00"
TAG_INITIATION: Final = "01"
TAG_INDIVIDUAL: Final = "29"
TAG_MERCHANT: Final = "30"
TAG_MCC: Final = "52"
TAG_CURRENCY: Final = "53"
TAG_AMOUNT: Final = "54"
TAG_COUNTRY: Final = "58"
TAG_NAME: Final = "59"
TAG_CITY: Final = "60"
TAG_ADDITIONAL: Final = "62"
TAG_CRC: Final = "63"
TAG_LANGUAGE: Final = "64"
TAG_TIMESTAMPS: Final = "99"

PAYLOAD_FORMAT: Final = "01"
STATIC: Final = "11"
DYNAMIC: Final = "12"

MAX_TLV_VALUE: Final = 99
MAX_NAME: Final = 25
MAX_CITY: Final = 15
MAX_ID: Final = 32
MAX_ADDITIONAL: Final = 25
MAX_AMOUNT_TEXT: Final = 13
TIMESTAMP_DIGITS: Final = 13

_TOP_TAGS: Final = frozenset(
    {"00", "01", "29", "30", "52", "53", "54", "58", "59", "60", "62", "63", "64", "99"}
)
_REQUIRED_TOP: Final = ("00", "01", "52", "53", "58", "59", "60")
_SUB_TAGS: Final = {
    TAG_INDIVIDUAL: (frozenset({"00", "01", "02"}), ("00",)),
    TAG_MERCHANT: (frozenset({"00", "01", "02"}), ("00", "01", "02")),
    TAG_ADDITIONAL: (frozenset({"01", "02", "03", "07", "08"}), ()),
    TAG_LANGUAGE: (frozenset({"00", "01", "02"}), ("00", "01")),
    TAG_TIMESTAMPS: (frozenset({"00", "01"}), ("00",)),
}
_ADDITIONAL_SUBS: Final = (
    ("01", "bill_number"),
    ("02", "mobile_number"),
    ("03", "store_label"),
    ("07", "terminal_label"),
    ("08", "purpose"),
)

_DIGITS: Final = re.compile(r"[0-9]+")
_CRC_HEX: Final = re.compile(r"[0-9A-F]{4}")
_AMOUNT_TEXT: Final = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]+))?")
_LETTERS2: Final = re.compile(r"[A-Za-z]{2}")
_MCC: Final = re.compile(r"[0-9]{4}")
_COUNTRY: Final = re.compile(r"[A-Z]{2}")


def _make_crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE: Final = _make_crc_table()


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor)."""
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


def khqr_md5(text: str) -> str:
    """Hex md5 of the whole code: the key Bakong uses to look a payment up."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def compute_crc_text(head: str) -> str:
    """The 4 uppercase hex digits that close a code whose text up to `6304` is `head`."""
    return f"{crc16_ccitt_false(head.encode('utf-8')):04X}"


# Field rules, shared by the encoder and the decoder.


def _fail(code: str, message: str) -> KHQRError:
    return KHQRError(message, code)


def _is_ascii_text(text: str) -> bool:
    return all(" " <= ch <= "~" for ch in text)


def _is_alternate_char(ch: str) -> bool:
    point = ord(ch)
    return 0x20 <= point < 0x7F or 0xA0 <= point < 0xD800 or 0xE000 <= point <= 0xFFFF


def _is_alternate_text(text: str) -> bool:
    """Printable BMP text: outside the BMP the SDK's UTF-16 lengths would disagree with ours."""
    return all(_is_alternate_char(ch) for ch in text)


def _check_text(name: str, value: object, limit: int, ascii_only: bool = True) -> None:
    # a text field is a non-empty string
    if not isinstance(value, str) or not value:
        raise _fail("malformed", f"{name}: expected non-empty text")
    # it fits its maximum length, in characters
    if len(value) > limit:
        raise _fail("too_long", f"{name}: {len(value)} characters, at most {limit}")
    # it uses only the characters its tag allows
    if not (_is_ascii_text(value) if ascii_only else _is_alternate_text(value)):
        raise _fail("malformed", f"{name}: characters outside the allowed set")


def _check_optional_text(name: str, value: object, limit: int, ascii_only: bool = True) -> None:
    if value is not None:
        _check_text(name, value, limit, ascii_only)


def _check_account(code: KHQR) -> None:
    _check_text("account id", code.account_id, MAX_ID)
    # the account id is a Bakong id name@bank
    if not is_account_id(code.account_id):
        raise _fail("bad_account", f"account id {code.account_id!r}: expected name@bank")
    _check_optional_text("merchant id", code.merchant_id, MAX_ID)
    _check_optional_text("account information", code.account_information, MAX_ID)
    _check_optional_text("acquiring bank", code.acquiring_bank, MAX_ID)
    # a merchant code names its acquiring bank
    if code.is_merchant and code.acquiring_bank is None:
        raise _fail("missing_tag", "merchant code without an acquiring bank (tag 30 sub 02)")
    # a merchant id takes the place of the individual's account information (both sub 01)
    if code.is_merchant and code.account_information is not None:
        raise _fail("malformed", "a merchant code carries a merchant id, not account info")


def _check_amount(code: KHQR) -> None:
    # only KHR and USD are KHQR currencies
    if code.currency not in CURRENCY_NUMERIC:
        raise _fail("unsupported_currency", f"currency {code.currency!r}: KHR or USD only")
    if code.amount is None:
        return
    # an amount is a positive integer of minor units
    if type(code.amount) is not int or code.amount <= 0:
        raise _fail("bad_amount", f"amount {code.amount!r}: expected a positive integer")
    text = format_khqr_amount(code.amount, code.currency)
    # the amount's text fits the SDK's 13 characters
    if len(text) > MAX_AMOUNT_TEXT:
        raise _fail("too_long", f"amount {text}: at most {MAX_AMOUNT_TEXT} characters")


def _check_timestamp(name: str, value: object) -> None:
    # a timestamp is milliseconds written with exactly 13 digits
    if type(value) is not int or not 10 ** (TIMESTAMP_DIGITS - 1) <= value < 10**TIMESTAMP_DIGITS:
        raise _fail("bad_timestamp", f"{name} {value!r}: expected 13-digit milliseconds")


def _check_timestamps(code: KHQR) -> None:
    # a dynamic code carries its expiry
    if code.is_dynamic and code.expires_ms is None:
        raise _fail("missing_expiry", "a dynamic code must carry an expiry (tag 99 sub 01)")
    # an expiry comes with its creation time
    if code.expires_ms is not None and code.created_ms is None:
        raise _fail("missing_tag", "expiry without a creation time (tag 99 sub 00)")
    if code.created_ms is not None:
        _check_timestamp("creation", code.created_ms)
    if code.expires_ms is not None:
        _check_timestamp("expiry", code.expires_ms)
        # a code expires after it was made
        if code.created_ms is not None and code.expires_ms <= code.created_ms:
            raise _fail("bad_timestamp", "expiry is not after creation")


def _check_merchant(code: KHQR) -> None:
    _check_text("merchant name", code.merchant_name, MAX_NAME)
    _check_text("merchant city", code.merchant_city, MAX_CITY)
    # the merchant category code is 4 digits
    if not isinstance(code.mcc, str) or _MCC.fullmatch(code.mcc) is None:
        raise _fail("malformed", f"MCC {code.mcc!r}: expected 4 digits")
    # the country is a 2-letter ISO code
    if not isinstance(code.country, str) or _COUNTRY.fullmatch(code.country) is None:
        raise _fail("malformed", f"country {code.country!r}: expected 2 capital letters")
    for _, attr in _ADDITIONAL_SUBS:
        _check_optional_text(attr, getattr(code.additional, attr), MAX_ADDITIONAL)


def _check_alternate(alt: AlternateLanguage | None) -> None:
    if alt is None:
        return
    # the language is a 2-letter code such as km
    if not isinstance(alt.language, str) or _LETTERS2.fullmatch(alt.language) is None:
        raise _fail("malformed", f"language {alt.language!r}: expected 2 letters")
    _check_text("alternate name", alt.name, MAX_NAME, ascii_only=False)
    _check_optional_text("alternate city", alt.city, MAX_CITY, ascii_only=False)


def _check_fields(code: KHQR) -> None:
    """Every rule a code obeys whichever way it travels; raises the first broken one."""
    _check_account(code)
    _check_amount(code)
    _check_merchant(code)
    _check_alternate(code.alternate_language)
    _check_timestamps(code)


# Encoding.


def format_khqr_amount(amount: int, currency: str) -> str:
    """KHR whole; USD bare when whole (`12`) and with 2 decimals otherwise (`12.50`)."""
    if CURRENCY_DECIMALS[currency] == 0:
        return str(amount)
    whole, cents = divmod(amount, 100)
    return str(whole) if cents == 0 else f"{whole}.{cents:02d}"


def _tlv(tag: str, value: str) -> str:
    # a value fits the two-digit length
    if len(value) > MAX_TLV_VALUE:
        raise _fail("too_long", f"tag {tag}: {len(value)} characters, at most {MAX_TLV_VALUE}")
    return f"{tag}{len(value):02d}{value}"


def _template(pairs: list[tuple[str, str | None]]) -> str | None:
    text = "".join(_tlv(tag, value) for tag, value in pairs if value is not None)
    return text or None


def _get_account_template(code: KHQR) -> tuple[str, str | None]:
    sub01 = code.merchant_id if code.is_merchant else code.account_information
    pairs = [("00", code.account_id), ("01", sub01), ("02", code.acquiring_bank)]
    return (TAG_MERCHANT if code.is_merchant else TAG_INDIVIDUAL), _template(pairs)


def _get_optional_fields(code: KHQR) -> Iterator[tuple[str, str | None]]:
    yield (
        TAG_ADDITIONAL,
        _template([(sub, getattr(code.additional, attr)) for sub, attr in _ADDITIONAL_SUBS]),
    )
    alt = code.alternate_language
    if alt is not None:
        yield TAG_LANGUAGE, _template([("00", alt.language), ("01", alt.name), ("02", alt.city)])
    created = None if code.created_ms is None else str(code.created_ms)
    expires = None if code.expires_ms is None else str(code.expires_ms)
    yield TAG_TIMESTAMPS, _template([("00", created), ("01", expires)])


def _get_fields(code: KHQR) -> Iterator[tuple[str, str | None]]:
    """Every field but the CRC, in the order the code is written (ascending tags)."""
    yield TAG_PAYLOAD_FORMAT, PAYLOAD_FORMAT
    yield TAG_INITIATION, DYNAMIC if code.is_dynamic else STATIC
    yield _get_account_template(code)
    yield TAG_MCC, code.mcc
    yield TAG_CURRENCY, CURRENCY_NUMERIC[code.currency]
    amount = code.amount
    yield TAG_AMOUNT, None if amount is None else format_khqr_amount(amount, code.currency)
    yield TAG_COUNTRY, code.country
    yield TAG_NAME, code.merchant_name
    yield TAG_CITY, code.merchant_city
    yield from _get_optional_fields(code)


def encode_khqr(code: KHQR) -> str:
    """The code's text, CRC included. Raises KHQRError if the code breaks a field rule."""
    _check_fields(code)
    head = "".join(_tlv(tag, value) for tag, value in _get_fields(code) if value is not None)
    head += TAG_CRC + "04"
    return head + compute_crc_text(head)


# Decoding.


def _parse_tlvs(text: str, where: str) -> list[tuple[str, str]]:
    """Split text into (tag, value) pairs; structure only, no meaning."""
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        tag, length_text = text[pos : pos + 2], text[pos + 2 : pos + 4]
        # a field starts with a 2-digit tag and a 2-digit length
        if len(length_text) < 2 or _DIGITS.fullmatch(tag + length_text) is None:
            raise _fail("malformed", f"{where}: no tag and length at character {pos}")
        length = int(length_text)
        # a value is never empty and ends inside its container
        if length == 0 or pos + 4 + length > len(text):
            raise _fail("bad_length", f"{where}: tag {tag} has a bad length {length_text}")
        pairs.append((tag, text[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    return pairs


def _check_tags(pairs: list[tuple[str, str]], known: frozenset[str], where: str) -> None:
    tags = [tag for tag, _ in pairs]
    # no tag appears twice
    if len(set(tags)) != len(tags):
        raise _fail("duplicate_tag", f"{where}: a tag appears twice")
    # every tag is one KHQR defines here
    unknown = sorted(set(tags) - known)
    if unknown:
        raise _fail("unknown_tag", f"{where}: unknown tag {unknown[0]}")
    # tags come in ascending order
    if tags != sorted(tags):
        raise _fail("wrong_order", f"{where}: tags out of ascending order")


def _check_crc(text: str, pairs: list[tuple[str, str]]) -> None:
    tags = [tag for tag, _ in pairs]
    # the code carries a CRC
    if TAG_CRC not in tags:
        raise _fail("missing_tag", "no CRC (tag 63)")
    # the code carries one CRC
    if tags.count(TAG_CRC) > 1:
        raise _fail("duplicate_tag", "the CRC (tag 63) appears twice")
    # the CRC is the last field
    if tags[-1] != TAG_CRC:
        raise _fail("wrong_order", "the CRC (tag 63) must be the last field")
    value = pairs[-1][1]
    # the CRC is 4 characters
    if len(value) != 4:
        raise _fail("bad_length", f"CRC length {len(value)}, expected 4")
    # the CRC is uppercase hex and matches the UTF-8 bytes before it
    if _CRC_HEX.fullmatch(value) is None or value != compute_crc_text(text[:-4]):
        raise _fail("bad_crc", "CRC does not match the code")


def _parse_template(tag: str, value: str | None) -> dict[str, str]:
    if value is None:
        return {}
    known, required = _SUB_TAGS[tag]
    pairs = _parse_tlvs(value, f"tag {tag}")
    _check_tags(pairs, known, f"tag {tag}")
    subs = dict(pairs)
    missing = [sub for sub in required if sub not in subs]
    # the template carries its required sub-tags
    if missing:
        raise _fail("missing_tag", f"tag {tag} lacks sub-tag {missing[0]}")
    return subs


def _parse_amount(text: str | None, currency: str) -> int | None:
    """Reads what other SDK versions write too: USD `12.5` and `12.00` mean 1250 and 1200."""
    if text is None:
        return None
    # the amount's text fits the SDK's 13 characters
    if len(text) > MAX_AMOUNT_TEXT:
        raise _fail("too_long", f"amount {text!r}: at most {MAX_AMOUNT_TEXT} characters")
    match = _AMOUNT_TEXT.fullmatch(text)
    # the amount is a plain decimal number without leading zeros
    if match is None:
        raise _fail("bad_amount", f"amount {text!r}: expected a decimal like 15000 or 12.50")
    whole, fraction = match.group(1), match.group(2) or ""
    # riel are whole
    if fraction and CURRENCY_DECIMALS[currency] == 0:
        raise _fail("khr_decimals", f"amount {text!r}: KHR amounts are whole riel")
    decimals = CURRENCY_DECIMALS[currency]
    # dollars have at most cents
    if len(fraction) > decimals:
        raise _fail("bad_amount", f"amount {text!r}: at most {decimals} decimals for {currency}")
    return int(whole + fraction.ljust(decimals, "0"))


def _parse_currency(numeric: str) -> str:
    by_numeric = {value: name for name, value in CURRENCY_NUMERIC.items()}
    # only KHR (116) and USD (840) are KHQR currencies
    if numeric not in by_numeric:
        raise _fail("unsupported_currency", f"currency {numeric!r}: 116 (KHR) or 840 (USD) only")
    return by_numeric[numeric]


def _parse_timestamp(text: str | None) -> int | None:
    if text is None:
        return None
    # a timestamp has 13 characters
    if len(text) != TIMESTAMP_DIGITS:
        raise _fail("bad_length", f"timestamp {text!r}: expected 13 digits")
    # a timestamp is digits
    if _DIGITS.fullmatch(text) is None:
        raise _fail("malformed", f"timestamp {text!r}: expected digits")
    return int(text)


def _check_header(fields: dict[str, str]) -> None:
    missing = [tag for tag in _REQUIRED_TOP if tag not in fields]
    # the code carries every required tag
    if missing:
        raise _fail("missing_tag", f"required tag {missing[0]} is missing")
    # exactly one account template, individual or merchant
    if (TAG_INDIVIDUAL in fields) == (TAG_MERCHANT in fields):
        raise _fail(
            "missing_tag" if TAG_INDIVIDUAL not in fields else "malformed",
            "expected exactly one of tag 29 (individual) and 30 (merchant)",
        )
    # the payload format is 01
    if fields[TAG_PAYLOAD_FORMAT] != PAYLOAD_FORMAT:
        raise _fail("malformed", f"payload format {fields[TAG_PAYLOAD_FORMAT]!r}, expected 01")
    # initiation is 11 (static) or 12 (dynamic)
    if fields[TAG_INITIATION] not in (STATIC, DYNAMIC):
        raise _fail("malformed", f"point of initiation {fields[TAG_INITIATION]!r}")
    # a dynamic code carries an amount and a static one does not
    if (fields[TAG_INITIATION] == DYNAMIC) != (TAG_AMOUNT in fields):
        raise _fail(
            "missing_tag" if TAG_AMOUNT not in fields else "bad_amount",
            "a dynamic code carries an amount (tag 54); a static code carries none",
        )


def _get_alternate(subs: dict[str, str]) -> AlternateLanguage | None:
    if not subs:
        return None
    return AlternateLanguage(language=subs["00"], name=subs["01"], city=subs.get("02"))


def _build(fields: dict[str, str]) -> KHQR:
    is_merchant = TAG_MERCHANT in fields
    account = _parse_template(
        TAG_MERCHANT if is_merchant else TAG_INDIVIDUAL,
        fields.get(TAG_MERCHANT, fields.get(TAG_INDIVIDUAL)),
    )
    extra = _parse_template(TAG_ADDITIONAL, fields.get(TAG_ADDITIONAL))
    times = _parse_template(TAG_TIMESTAMPS, fields.get(TAG_TIMESTAMPS))
    currency = _parse_currency(fields[TAG_CURRENCY])
    return KHQR(
        account_id=AccountId(account["00"]),
        merchant_name=fields[TAG_NAME],
        merchant_city=fields[TAG_CITY],
        currency=currency,
        amount=_parse_amount(fields.get(TAG_AMOUNT), currency),
        merchant_id=account.get("01") if is_merchant else None,
        account_information=None if is_merchant else account.get("01"),
        acquiring_bank=account.get("02"),
        mcc=fields[TAG_MCC],
        country=fields[TAG_COUNTRY],
        additional=AdditionalData(**{attr: extra.get(sub) for sub, attr in _ADDITIONAL_SUBS}),
        alternate_language=_get_alternate(_parse_template(TAG_LANGUAGE, fields.get(TAG_LANGUAGE))),
        created_ms=_parse_timestamp(times.get("00")),
        expires_ms=_parse_timestamp(times.get("01")),
    )


def is_expired(code: KHQR, now_ms: int) -> bool:
    """A code with an expiry stops being payable at that instant."""
    return code.expires_ms is not None and now_ms >= code.expires_ms


def decode_khqr(text: str, now_ms: int | None = None) -> KHQR:
    """Read and check a code; with `now_ms`, also refuse it once expired."""
    # the text is printable BMP characters, so character lengths agree with the SDK's
    if not isinstance(text, str) or not _is_alternate_text(text):
        raise _fail("malformed", "a code is printable text")
    pairs = _parse_tlvs(text, "code")
    _check_crc(text, pairs)
    _check_tags(pairs[:-1], _TOP_TAGS - {TAG_CRC}, "code")
    fields = dict(pairs[:-1])
    _check_header(fields)
    code = _build(fields)
    _check_fields(code)
    # a code is paid before it expires
    if now_ms is not None and is_expired(code, now_ms):
        raise _fail("expired", f"the code expired at {format_time_ms(code.expires_ms or 0)}")
    return code
