"""Values as people read them in the CLI's tables and lines (scripts get `--json`, with
raw milliseconds and exact decimal strings): local ISO times, grouped amounts, yes/no."""

from __future__ import annotations

from datetime import datetime


def format_local_time(ms: int | None) -> str:
    """Epoch milliseconds as this machine's local time, ISO style with its UTC offset
    (`2026-12-01 19:00:05 +07:00`); `-` for none."""
    if ms is None:
        return "-"
    moment = datetime.fromtimestamp(ms / 1000).astimezone()
    return moment.isoformat(sep=" ", timespec="seconds")


def group_amount(text: str) -> str:
    """An exact decimal string with thousands separators: `99985000` -> `99,985,000`,
    `1234.50` -> `1,234.50` (other text is left as it is)."""
    whole, dot, frac = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    digits = whole.removeprefix("-")
    if not digits.isdigit():
        return text
    return f"{sign}{int(digits):,}{dot}{frac}"


def yes_no(value: object) -> str:
    return "yes" if value else "no"
