"""`bakong khqr new|decode`: codes the codec accepts, terminal and PNG output, every
error as one `error: <code>: <message>` line. No node is needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.khqr import KhqrCliError, parse_duration_ms
from cli.main import cli
from ledger.khqr import decode_khqr, khqr_md5

STATIC_VECTOR = (
    "00020101021129190015sokha_chan@aclb5204599953031165802KH5910Sokha Chan6010Phnom Penh6304F4AE"
)
DYNAMIC_VECTOR = (
    "00020101021230460016coffee_shop@wing01091234567890209Wing Bank52045999530311654051500"
    "05802KH5913Angkor Coffee6009Siem Reap62440113INV-2026-00010313Angkor Coffee0706POS-01"
    "9934001317672256000000113176731200000063041AE3"
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def ok_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def fails(code: str, *args: str) -> None:
    result = run(*args)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {code}: "), result.stderr


def test_basic() -> None:
    out = ok_json(
        "khqr", "new", "coffee_shop@wing", "--amount", "15000", "--merchant-id", "1234567890",
        "--acquiring-bank", "Wing Bank", "--name", "Angkor Coffee", "--city", "Siem Reap",
        "--bill-number", "INV-2026-0001", "--store-label", "Angkor Coffee",
        "--terminal-label", "POS-01", "--expires-in", "1h",
    )  # fmt: skip
    code = decode_khqr(out["qr"])
    assert code.account_id == "coffee_shop@wing" and code.is_merchant
    assert code.amount == 15000 and code.currency == "KHR"
    assert code.additional.bill_number == "INV-2026-0001"
    assert code.expires_ms is not None and code.created_ms is not None
    assert code.expires_ms - code.created_ms == 3_600_000
    assert out["md5"] == khqr_md5(out["qr"]) and out["dynamic"] is True
    assert out["amount"] == "15000" and out["expired"] is False


def test_static_code_has_no_expiry() -> None:
    out = ok_json("khqr", "new", "sokha_chan@aclb", "--name", "Sokha Chan")
    code = decode_khqr(out["qr"])
    assert not code.is_dynamic and code.expires_ms is None and code.created_ms is None
    assert out["amount"] is None and out["dynamic"] is False


def test_dynamic_code_expires_in_ten_minutes_by_default() -> None:
    code = decode_khqr(ok_json("khqr", "new", "a@aba", "--amount", "1.50", "--asset", "usd")["qr"])
    assert code.currency == "USD" and code.amount == 150
    assert code.expires_ms is not None and code.created_ms is not None
    assert code.expires_ms - code.created_ms == 600_000


def test_name_defaults_to_the_account_name() -> None:
    assert (
        decode_khqr(ok_json("khqr", "new", "sokha_chan@aclb")["qr"]).merchant_name == "sokha_chan"
    )


def test_text_output_prints_the_code_then_a_qr() -> None:
    result = run("khqr", "new", "sokha_chan@aclb")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert decode_khqr(lines[0]).account_id == "sokha_chan@aclb"
    assert len(lines) > 20 and any("█" in line for line in lines[1:])
    assert result.stderr.startswith("md5 ")


def test_png(tmp_path: Path) -> None:
    path = tmp_path / "code.png"
    out = ok_json("khqr", "new", "sokha_chan@aclb", "--png", str(path))
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert decode_khqr(out["qr"])


def test_decode_vectors() -> None:
    static = ok_json("khqr", "decode", STATIC_VECTOR)
    assert static["account_id"] == "sokha_chan@aclb" and static["dynamic"] is False
    assert static["md5"] == khqr_md5(STATIC_VECTOR) and static["expired"] is False
    dynamic = ok_json("khqr", "decode", DYNAMIC_VECTOR)
    assert dynamic["merchant_id"] == "123456789" and dynamic["amount"] == "15000"
    assert dynamic["additional"]["terminal_label"] == "POS-01"
    # made in 2026 with a one-day lifetime: shown, flagged expired
    assert dynamic["expired"] is True


def test_decode_reads_stdin_and_prints_text() -> None:
    result = run("khqr", "decode", "-", input=STATIC_VECTOR + "\n")
    assert result.exit_code == 0
    assert "sokha_chan@aclb" in result.stdout and "Phnom Penh" in result.stdout


def test_invalid_tampered_code() -> None:
    fails("bad_crc", "khqr", "decode", STATIC_VECTOR.replace("Sokha", "Sokhe"))


def test_invalid_truncated_code() -> None:
    fails("bad_length", "khqr", "decode", STATIC_VECTOR[:40])


def test_invalid_khr_decimals() -> None:
    fails("invalid_amount", "khqr", "new", "a@aba", "--amount", "1.5")


def test_invalid_zero_amount() -> None:
    fails("invalid_amount", "khqr", "new", "a@aba", "--amount", "0")


def test_invalid_account() -> None:
    fails("invalid_id", "khqr", "new", "Not An Account")


def test_invalid_name_too_long() -> None:
    fails("too_long", "khqr", "new", "a@aba", "--name", "x" * 26)


def test_invalid_merchant_without_acquiring_bank() -> None:
    fails("missing_tag", "khqr", "new", "a@aba", "--merchant-id", "m1")


def test_invalid_duration() -> None:
    fails("bad_duration", "khqr", "new", "a@aba", "--amount", "100", "--expires-in", "soon")


@pytest.mark.parametrize(("text", "ms"), [("500ms", 500), ("30s", 30_000), ("10m", 600_000),
                                          ("2h", 7_200_000), ("1d", 86_400_000)])  # fmt: skip
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "0m", "10", "m", "-1m", "1.5h", "10 years"])
def test_invalid_parse_duration(text: str) -> None:
    with pytest.raises(KhqrCliError) as err:
        parse_duration_ms(text)
    assert err.value.code == "bad_duration"
