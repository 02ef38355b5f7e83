"""Inline SVG charts: a polyline's points for a series of per-minute counts."""

from __future__ import annotations

from collections.abc import Sequence

WIDTH, HEIGHT = 240, 48


def sparkline(counts: Sequence[int], width: int = WIDTH, height: int = HEIGHT) -> str:
    """``x,y`` pairs scaled to the box (tallest count touches the top; y grows down)."""
    if not counts:
        return ""
    peak = max(max(counts), 1)
    step = width / max(len(counts) - 1, 1)
    return " ".join(
        f"{index * step:.1f},{height - 2 - (count / peak) * (height - 4):.1f}"
        for index, count in enumerate(counts)
    )
