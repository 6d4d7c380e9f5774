"""Small server-rendered SVG charts (no JavaScript): a line chart of series over
days and an interval chart of estimates with their low and high bounds.

Each chart carries ``role="img"``, a ``<title>`` and a description, and a table
of the same numbers is rendered next to it by the page.

>>> svg = line_chart("Engagement", ["d1", "d2"], {"email": [0.1, None]})
>>> svg.startswith("<svg") and "email" in svg
True
>>> ">Lift</title>" in interval_chart("Lift", [("engagement", 0.1, -0.1, 0.3)])
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

from markupsafe import Markup

#: colour per series, in order (readable on white, distinguishable in grey)
PALETTE: tuple[str, ...] = ("#1f5fa8", "#c2571a", "#2a8a4a", "#8a2a8a", "#6b6b00", "#333333")
W, H = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 20, 40


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    step = (hi - lo) / n
    return [lo + i * step for i in range(n + 1)]


def number(v: object, digits: int = 4) -> str:
    """A number for a table cell: fixed digits, or an en dash when missing or not finite.

    >>> number(0.12345), number(float("nan")), number(None)
    ('0.1235', '–', '–')
    """
    if isinstance(v, int | float) and math.isfinite(v):
        return f"{v:.{digits}f}"
    return "–"


def _fmt(v: float) -> str:
    return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"


def line_chart(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]]
) -> Markup:
    """One line per series over ``labels`` (x); a None value breaks the line.

    Parameters
    ----------
    title : str
    labels : sequence of str, shape (n_points,)
    series : mapping of name to sequence of float or None, each shape (n_points,)
    """
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    lo = min([0.0, *values])
    hi = max([0.0, *values])
    # a flat series (all zero) still gets a readable axis
    hi = lo + 1.0 if hi - lo < 1e-9 else hi + (hi - lo) * 0.05
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return LEFT + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(v: float) -> float:
        return TOP + ph * (1 - (v - lo) / (hi - lo))

    parts = [
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-labelledby="t-{id(series)}" '
        f'class="chart" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="t-{id(series)}">{escape(title)}</title>',
    ]
    for t in _ticks(lo, hi):
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
            'stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end" '
            f'font-size="11">{_fmt(t)}</text>'
        )
    step = max(1, math.ceil(n / 7))
    for i, lab in enumerate(labels):
        if i % step == 0 or i == n - 1:
            parts.append(
                f'<text x="{x(i):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" '
                f'font-size="11">{escape(lab)}</text>'
            )
    for k, (name, vals) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for i, v in enumerate(vals):
            if v is None or not math.isfinite(v):
                runs.append([])
            else:
                runs[-1].append(f"{x(i):.1f},{y(v):.1f}")
        for run in runs:
            if len(run) > 1:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                    f'points="{" ".join(run)}"/>'
                )
            for pt in run:
                cx, cy = pt.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
        ly = TOP + 14 + 18 * k
        parts.append(
            f'<rect x="{W - RIGHT + 12}" y="{ly - 9}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{W - RIGHT + 30}" y="{ly + 1}" font-size="12">{escape(name)}</text>'
        )
    if not values:
        parts.append(
            f'<text x="{LEFT + pw / 2}" y="{TOP + ph / 2}" text-anchor="middle" '
            'font-size="13">no decisions in this period</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def interval_chart(title: str, rows: Sequence[tuple[str, float, float, float]]) -> Markup:
    """Point estimates with their intervals, one row each, and the zero line.

    Parameters
    ----------
    title : str
    rows : sequence of (label, estimate, low, high), shape (n_rows,)
        Non-finite numbers are drawn as "no estimate".
    """
    finite = [v for _, e, lo_, hi_ in rows for v in (e, lo_, hi_) if math.isfinite(v)]
    lo = min([0.0, *finite])
    hi = max([0.0, *finite])
    pad = (hi - lo) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad
    row_h = 34
    height = TOP + BOTTOM + row_h * max(len(rows), 1)
    left = 150
    pw = W - left - 30

    def x(v: float) -> float:
        return left + pw * (v - lo) / (hi - lo)

    parts = [
        f'<svg viewBox="0 0 {W} {height}" role="img" aria-labelledby="t-{id(rows)}" '
        f'class="chart" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="t-{id(rows)}">{escape(title)}</title>',
        f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{TOP}" y2="{height - BOTTOM}" '
        'stroke="#999" stroke-dasharray="4 3"/>',
    ]
    for t in _ticks(lo, hi):
        parts.append(
            f'<text x="{x(t):.1f}" y="{height - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="11">{_fmt(t)}</text>'
        )
    for i, (label, est, low, high) in enumerate(rows):
        cy = TOP + row_h * i + row_h / 2
        parts.append(
            f'<text x="{left - 8}" y="{cy + 4:.1f}" text-anchor="end" '
            f'font-size="12">{escape(label)}</text>'
        )
        if all(math.isfinite(v) for v in (est, low, high)):
            parts.append(
                f'<line x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" '
                f'stroke="{PALETTE[0]}" stroke-width="3"/>'
                f'<circle cx="{x(est):.1f}" cy="{cy:.1f}" r="5" fill="{PALETTE[1]}"/>'
            )
        else:
            parts.append(f'<text x="{left + 8}" y="{cy + 4:.1f}" font-size="12">no estimate</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
