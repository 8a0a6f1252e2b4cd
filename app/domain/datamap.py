"""The data map: which datum flows to which receiving system, as geometry for an SVG.

Drawn on the server (no script): data on the left, receivers on the right, one curve per flow.
Each node and each curve carries a <title>, and the page lists the same flows as a table, so
the picture is never the only way to read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

COLUMN_WIDTH, GAP, ROW, NODE_HEIGHT, MARGIN = 300, 140, 40, 30, 8


@dataclass(frozen=True)
class Node:
    key: str
    label: str
    x: float
    y: float

    @property
    def width(self) -> int:
        return COLUMN_WIDTH

    @property
    def height(self) -> int:
        return NODE_HEIGHT

    @property
    def short(self) -> str:
        """The label as it fits the box; the whole label is the node's <title>."""
        return self.label if len(self.label) <= 44 else self.label[:43].rstrip() + "…"

    @property
    def text_y(self) -> float:
        return self.y + NODE_HEIGHT / 2 + 4


@dataclass(frozen=True)
class Flow:
    source: str
    target: str
    label: str  # "Email address → Hosting provider": a <title> for the curve
    path: str  # SVG path data


@dataclass(frozen=True)
class DataMap:
    width: int
    height: int
    data: list[Node]
    receivers: list[Node]
    flows: list[Flow]


def data_map(items: Sequence[tuple[str, str, Sequence[str]]]) -> DataMap:
    """Lay out (key, label, receivers) triples: receivers in order of first appearance."""
    receivers: dict[str, int] = {}
    for _, _, targets in items:
        for target in targets:
            receivers.setdefault(target, len(receivers))
    left = [Node(key, label, MARGIN, MARGIN + i * ROW) for i, (key, label, _) in enumerate(items)]
    right_x = MARGIN + COLUMN_WIDTH + GAP
    right = [Node(f"r{i}", name, right_x, MARGIN + i * ROW) for name, i in receivers.items()]
    flows = []
    for node, (_, label, targets) in zip(left, items, strict=True):
        for target in targets:
            end = right[receivers[target]]
            x1, y1 = node.x + COLUMN_WIDTH, node.y + NODE_HEIGHT / 2
            x2, y2 = end.x, end.y + NODE_HEIGHT / 2
            bend = GAP / 2
            flows.append(
                Flow(
                    node.key,
                    end.key,
                    f"{label} → {target}",
                    f"M{x1:g},{y1:g} C{x1 + bend:g},{y1:g} {x2 - bend:g},{y2:g} {x2:g},{y2:g}",
                )
            )
    rows = max(len(left), len(right), 1)
    return DataMap(
        width=2 * MARGIN + 2 * COLUMN_WIDTH + GAP,
        height=2 * MARGIN + rows * ROW - (ROW - NODE_HEIGHT),
        data=left,
        receivers=right,
        flows=flows,
    )
