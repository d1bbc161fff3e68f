"""Ratings in pictures: tier labels, the city's tier bars and a shop's tier history,
as server-rendered SVG geometry. Pure: no table, no clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

TIERS = ("A", "B", "C", "D")
TIER_LABELS = {
    "A": "A 级 · 守信",
    "B": "B 级 · 基本守信",
    "C": "C 级 · 失信风险较高",
    "D": "D 级 · 严重失信风险",
}
TIER_MEANING = {
    "A": "计量信用好，抽查比例和频次较低。",
    "B": "计量信用一般，按常规比例抽查。",
    "C": "计量信用风险较高，提高抽查比例和频次。",
    "D": "计量信用风险高，大幅提高抽查比例和频次，必要时现场检查。",
}



CHART_WIDTH = 440
"""The tier chart's viewBox width; every bar and its count label lie inside it."""
BAR_X = 40
LABEL_GAP = 6
LABEL_FONT = 13


def text_width(text: str, *, font_size: int = LABEL_FONT) -> float:
    """A generous estimate of the rendered width of ``text``: a full em for a CJK or
    full-width character, 0.62 em for anything else (digits, %, spaces)."""
    return round(sum(font_size if ord(ch) > 0x2E7F else 0.62 * font_size for ch in text), 1)


@dataclass
class Bar:
    tier: str
    label: str
    count: int
    share: float
    y: int
    width: float
    text: str = ""
    """The count label drawn after the bar."""
    text_x: float = 0.0
    text_width: float = 0.0


def count_text(count: int, share: float) -> str:
    return f"{count} 家（{share * 100:.1f}%）"


def tier_bars(
    by_tier: Mapping[str, int], *, unrated: int = 0, chart_width: int = CHART_WIDTH
) -> list[Bar]:
    """Horizontal bars, one per tier, scaled to the largest count so that the longest
    bar still leaves room for its count label inside ``chart_width``."""
    rows = [(t, TIER_LABELS[t], int(by_tier.get(t, 0))) for t in TIERS]
    if unrated:
        rows.append(("none", "未评定", unrated))
    total = sum(n for _, _, n in rows) or 1
    top = max((n for _, _, n in rows), default=0) or 1
    texts = [count_text(n, n / total) for _, _, n in rows]
    widest = max(text_width(t) for t in texts)
    room = chart_width - BAR_X - LABEL_GAP - widest
    bars = []
    for i, ((t, label, n), text) in enumerate(zip(rows, texts, strict=True)):
        width = round(max(n / top * room, 2 if n else 0), 1)
        bars.append(
            Bar(
                tier=t,
                label=label,
                count=n,
                share=n / total,
                y=i * 34,
                width=width,
                text=text,
                text_x=round(BAR_X + width + LABEL_GAP, 1),
                text_width=text_width(text),
            )
        )
    return bars


@dataclass
class StepPoint:
    x: float
    y: float
    tier: str
    on: date


@dataclass
class HistoryChart:
    path: str
    points: list[StepPoint]
    start: date
    end: date
    width: int
    height: int
    levels: list[tuple[str, float]]


def history_chart(
    items: Sequence[tuple[date, str]], *, today: date, width: int = 360, height: int = 150
) -> HistoryChart | None:
    """A step line of the tier over time (A at the top), from ``(from_date, tier)`` pairs."""
    pts = sorted((d, t) for d, t in items if t in TIERS)
    if not pts:
        return None
    start = min(pts[0][0], today - timedelta(days=30))
    end = max(today, pts[-1][0]) + timedelta(days=1)
    span = max((end - start).days, 1)
    left, right, top, bottom = 26, 8, 12, 24
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(d: date) -> float:
        return round(left + (d - start).days / span * plot_w, 1)

    def y(t: str) -> float:
        return round(top + TIERS.index(t) / (len(TIERS) - 1) * plot_h, 1)

    # Keep only changes of tier (one point per day: the day's last value).
    by_day: dict[date, str] = {}
    for d, t in pts:
        by_day[d] = t
    changes: list[tuple[date, str]] = []
    for d, t in sorted(by_day.items()):
        if not changes or changes[-1][1] != t:
            changes.append((d, t))
    path = []
    for i, (d, t) in enumerate(changes):
        if i == 0:
            path.append(f"M{x(d)},{y(t)}")
        else:
            path.append(f"H{x(d)}V{y(t)}")
    path.append(f"H{x(end)}")
    return HistoryChart(
        path="".join(path),
        points=[StepPoint(x(d), y(t), t, d) for d, t in changes],
        start=start,
        end=end,
        width=width,
        height=height,
        levels=[(t, y(t)) for t in TIERS],
    )


