"""Server-rendered SVG line charts: coordinates computed here, markup in the template."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 12, 36


@dataclass(frozen=True)
class Line:
    key: str
    label: object
    css: str  # class name: colour and dash pattern come from app.css
    segments: list[str]  # "x,y x,y ..." per unbroken run of known values
    last: tuple[float, float] | None


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot: tuple[int, int, int, int]  # left, top, right, bottom
    grid: list[tuple[float, str]]  # (y, label) for 0 %, 25 %, ... 100 %
    ticks: list[tuple[float, date]]  # (x, day) along the bottom
    lines: list[Line]


def rate_chart(days: list[date], series: list[tuple[str, object, list[float | None]]]) -> Chart:
    """A 0-100 % line chart of daily rates; None values leave a gap in the line."""
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM
    span = max(len(days) - 1, 1)

    def x(i: int) -> float:
        return round(LEFT + (right - LEFT) * i / span, 1)

    def y(value: float) -> float:
        return round(bottom - (bottom - TOP) * max(0.0, min(1.0, value)), 1)

    lines = []
    for n, (key, label, values) in enumerate(series):
        segments, current, last = [], [], None
        for i, value in enumerate(values):
            if value is None:
                if current:
                    segments.append(" ".join(current))
                current = []
                continue
            last = (x(i), y(value))
            current.append(f"{last[0]},{last[1]}")
        if current:
            segments.append(" ".join(current))
        lines.append(Line(key, label, f"series series-{n + 1}", segments, last))
    step = max(len(days) // 6, 1)
    ticks = [(x(i), days[i]) for i in range(0, len(days), step)]
    grid = [(y(p / 100), f"{p} %") for p in (0, 25, 50, 75, 100)]
    return Chart(WIDTH, HEIGHT, (LEFT, TOP, right, bottom), grid, ticks, lines)
