"""A grouped bar chart as plain geometry, for a server-rendered SVG (no script, no style)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 640, 180
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 36, 28, 10


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str  # the CSS class: "granted" or "withdrawn"
    label: str  # a <title> for each bar: what a screen reader and a hover show


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    bars: list[Bar]
    x_labels: list[Tick]
    y_labels: list[Tick]
    baseline: float
    total_granted: int
    total_withdrawn: int


def grouped_bars(
    title: str, periods: Sequence[str], counts: Mapping[str, tuple[int, int]]
) -> Chart:
    """One pair of bars (granted, withdrawn) per period, scaled to the largest count."""
    top = max([1, *(max(pair) for pair in counts.values())])
    plot_w = WIDTH - MARGIN_LEFT - 8
    plot_h = HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    slot = plot_w / max(len(periods), 1)
    bar_w = max(slot * 0.38, 1.0)
    baseline = MARGIN_TOP + plot_h
    bars: list[Bar] = []
    x_labels: list[Tick] = []
    every = max(1, len(periods) // 12)
    for index, period in enumerate(periods):
        granted, withdrawn = counts.get(period, (0, 0))
        left = MARGIN_LEFT + index * slot + slot * 0.1
        for offset, value, series in ((0.0, granted, "granted"), (bar_w, withdrawn, "withdrawn")):
            height = plot_h * value / top
            bars.append(
                Bar(
                    round(left + offset, 1),
                    round(baseline - height, 1),
                    round(bar_w, 1),
                    round(height, 1),
                    series,
                    f"{period}: {value} {series}",
                )
            )
        if index % every == 0:
            x_labels.append(Tick(round(left + bar_w, 1), HEIGHT - 10, period))
    y_labels = [
        Tick(MARGIN_LEFT - 4, baseline, "0"),
        Tick(MARGIN_LEFT - 4, MARGIN_TOP + 8, str(top)),
    ]
    return Chart(
        title,
        WIDTH,
        HEIGHT,
        bars,
        x_labels,
        y_labels,
        baseline,
        sum(g for g, _ in counts.values()),
        sum(w for _, w in counts.values()),
    )
