"""The timeline PNG of a run, drawn into a pixel array and written with pypng (no
matplotlib): acknowledged transfers per second (top) and blocks committed per second
(bottom), each fault's window shaded in its kind's colour, seconds along the bottom,
a legend and the scale in a small built-in pixel font."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import png

Color = tuple[int, int, int]

WHITE: Final[Color] = (255, 255, 255)
BLACK: Final[Color] = (0, 0, 0)
GRID: Final[Color] = (225, 225, 225)
TX_BAR: Final[Color] = (60, 110, 180)
BLOCK_BAR: Final[Color] = (70, 150, 90)
FAULT_COLORS: Final[dict[str, Color]] = {
    "partition": (250, 205, 205),
    "kill": (215, 215, 215),
    "pause": (205, 225, 250),
    "skew": (250, 235, 190),
    "disk": (225, 205, 245),
}
OTHER_FAULT: Final[Color] = (235, 235, 200)

# A 3x5 pixel font: each glyph is five rows of three pixels.
_FONT: Final[dict[str, str]] = {
    "0": "XXX X.X X.X X.X XXX", "1": ".X. XX. .X. .X. XXX", "2": "XXX ..X XXX X.. XXX",
    "3": "XXX ..X XXX ..X XXX", "4": "X.X X.X XXX ..X ..X", "5": "XXX X.. XXX ..X XXX",
    "6": "XXX X.. XXX X.X XXX", "7": "XXX ..X ..X ..X ..X", "8": "XXX X.X XXX X.X XXX",
    "9": "XXX X.X XXX ..X XXX", "A": ".X. X.X XXX X.X X.X", "B": "XX. X.X XX. X.X XX.",
    "C": ".XX X.. X.. X.. .XX", "D": "XX. X.X X.X X.X XX.", "E": "XXX X.. XX. X.. XXX",
    "F": "XXX X.. XX. X.. X..", "G": ".XX X.. X.X X.X .XX", "H": "X.X X.X XXX X.X X.X",
    "I": "XXX .X. .X. .X. XXX", "J": "..X ..X ..X X.X .X.", "K": "X.X X.X XX. X.X X.X",
    "L": "X.. X.. X.. X.. XXX", "M": "X.X XXX XXX X.X X.X", "N": "XX. X.X X.X X.X X.X",
    "O": ".X. X.X X.X X.X .X.", "P": "XX. X.X XX. X.. X..", "Q": ".X. X.X X.X XX. .XX",
    "R": "XX. X.X XX. X.X X.X", "S": ".XX X.. .X. ..X XX.", "T": "XXX .X. .X. .X. .X.",
    "U": "X.X X.X X.X X.X XXX", "V": "X.X X.X X.X X.X .X.", "W": "X.X X.X XXX XXX X.X",
    "X": "X.X X.X .X. X.X X.X", "Y": "X.X X.X .X. .X. .X.", "Z": "XXX ..X .X. X.. XXX",
    " ": "... ... ... ... ...", "-": "... ... XXX ... ...", "/": "..X ..X .X. X.. X..",
    ":": "... .X. ... .X. ...", ".": "... ... ... ... .X.", "(": ".X. X.. X.. X.. .X.",
    ")": ".X. ..X ..X ..X .X.", "_": "... ... ... ... XXX", "=": "... XXX ... XXX ...",
    ",": "... ... ... .X. X..", "+": "... .X. XXX .X. ...",
}  # fmt: skip


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.pixels = [[WHITE] * width for _ in range(height)]

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        """Fill [x0, x1) x [y0, y1), clipped to the canvas."""
        for y in range(max(0, y0), min(self.height, y1)):
            row = self.pixels[y]
            for x in range(max(0, x0), min(self.width, x1)):
                row[x] = color

    def text(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = 2) -> int:
        """Draw `text` (upper-cased; unknown characters as spaces); the x after it."""
        for char in text.upper():
            rows = _FONT.get(char, _FONT[" "]).split()
            for j, row in enumerate(rows):
                for i, cell in enumerate(row):
                    if cell == "X":
                        self.rect(
                            x + i * scale, y + j * scale, x + (i + 1) * scale, y + (j + 1) * scale,
                            color,
                        )  # fmt: skip
            x += 4 * scale
        return x

    def write(self, path: Path) -> None:
        rows = [[channel for pixel in row for channel in pixel] for row in self.pixels]
        with path.open("wb") as f:
            png.Writer(self.width, self.height, greyscale=False, bitdepth=8).write(f, rows)


def per_second(times: Sequence[float], seconds: int) -> list[int]:
    counts = [0] * seconds
    for t in times:
        if 0 <= t < seconds:
            counts[int(t)] += 1
    return counts


def _nice_max(value: int) -> int:
    if value <= 5:
        return 5
    magnitude: int = 10 ** int(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def draw_timeline(records: Sequence[dict[str, Any]], path: Path, width: int | None = None) -> None:
    """The timeline of `records` (a history) as a PNG at `path`: 1200 pixels wide, or
    about one pixel a second for runs longer than that (at most 3600)."""
    acked = [r["t"] for r in records if r["type"] == "ok" and r.get("f") == "transfer"]
    commits = []
    top = -1
    for r in sorted(records, key=lambda r: r["t"]):
        if r["type"] == "observe" and isinstance(r.get("height"), int) and r["height"] > top:
            if top >= 0:
                commits.extend([r["t"]] * (r["height"] - top))
            top = r["height"]
    windows = []
    starts: dict[Any, dict[str, Any]] = {}
    end = max((r["t"] for r in records), default=1.0)
    for r in records:
        if r["type"] == "nemesis" and r.get("f") == "start":
            starts[r["id"]] = r
        elif r["type"] == "nemesis" and r.get("f") == "stop" and r["id"] in starts:
            windows.append((starts.pop(r["id"]), r["t"]))
    windows += [(start, end) for start in starts.values()]
    seconds = max(1, math.ceil(end))
    if width is None:
        width = max(1200, min(3600, seconds + 100))

    left, right, top_margin, gap, panel, bottom = 60, 20, 56, 30, 150, 40
    height = top_margin + 2 * panel + gap + bottom
    canvas = Canvas(width, height)
    plot_w = width - left - right

    def x_of(t: float) -> int:
        return left + int(t / seconds * plot_w)

    # legend and title
    x = canvas.text(left, 8, "NEMESIS TIMELINE: ACKED TXS/S (TOP), BLOCKS/S (BOTTOM)")
    x = left
    for kind, color in FAULT_COLORS.items():
        canvas.rect(x, 30, x + 14, 44, color)
        x = canvas.text(x + 18, 32, kind) + 14
    panels = [
        (top_margin, per_second(acked, seconds), TX_BAR, "TX/S"),
        (top_margin + panel + gap, per_second(commits, seconds), BLOCK_BAR, "BLK/S"),
    ]
    for y0, counts, color, label in panels:
        y1 = y0 + panel
        for start, stop in windows:
            shade = FAULT_COLORS.get(start.get("fault", ""), OTHER_FAULT)
            canvas.rect(x_of(start["t"]), y0, max(x_of(stop), x_of(start["t"]) + 1), y1, shade)
        peak = _nice_max(max(counts, default=0))
        for fraction in (0.25, 0.5, 0.75):
            yy = y1 - int(panel * fraction)
            canvas.rect(left, yy, left + plot_w, yy + 1, GRID)
        bar_w = max(1, plot_w // seconds - 1)
        for second, count in enumerate(counts):
            if count:
                bar_h = max(1, int(count / peak * panel))
                bx = x_of(second)
                canvas.rect(bx, y1 - bar_h, bx + bar_w, y1, color)
        canvas.rect(left - 1, y0, left, y1, BLACK)
        canvas.rect(left - 1, y1, left + plot_w, y1 + 1, BLACK)
        canvas.text(4, y0, str(peak))
        canvas.text(4, y1 - 10, "0")
        canvas.text(4, y0 + panel // 2 - 5, label, scale=1)
    # seconds along the bottom
    base = top_margin + 2 * panel + gap
    step = 10 if seconds <= 300 else 60 if seconds <= 1800 else 300
    for t in range(0, seconds + 1, step):
        xx = x_of(t)
        canvas.rect(xx, base, xx + 1, base + 5, BLACK)
        canvas.text(xx - 4, base + 8, str(t))
    canvas.text(left + plot_w - 70, base + 24, "SECONDS")
    canvas.write(path)
