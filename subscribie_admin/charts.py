"""Server-side SVG charts for the dashboard: plain data in, an escaped SVG string out.

Pure (no database, no Django state beyond ``escape``/``mark_safe``); every label is escaped, as
image names are typed by staff. No script and no external assets, so the charts render in any
browser, in screenshots and with script off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Distinguishable colours for image series (colour-blind-friendly "Tableau 10").
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
FONT = 'font-family="-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif" font-size="12"'


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    colour: str = PALETTE[0]


def colour_for(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _svg(width: int, height: int, body: str, title: str) -> SafeString:
    return mark_safe(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" {FONT}>'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def bar_chart(bars: Sequence[Bar], *, title: str, width: int = 560) -> SafeString:
    """Horizontal bars, one per row, longest first as given; the value printed after each."""
    if not bars:
        return _svg(
            width, 30, f'<text x="0" y="20" fill="#666">{escape("No data yet.")}</text>', title
        )
    row, label_width = 24, min(260, 20 + 7 * max(len(b.label) for b in bars))
    plot = width - label_width - 60
    top = max(b.value for b in bars) or 1
    parts = []
    for i, b in enumerate(bars):
        y = i * row
        length = max(round(plot * b.value / top), 1 if b.value else 0)
        parts.append(
            f'<g class="bar"><text x="{label_width - 8}" y="{y + 16}" text-anchor="end">'
            f"{escape(b.label)}</text>"
            f'<rect x="{label_width}" y="{y + 4}" width="{length}" height="16" rx="2" '
            f'fill="{escape(b.colour)}"><title>{escape(b.label)}: {b.value}</title></rect>'
            f'<text x="{label_width + length + 6}" y="{y + 16}" font-weight="bold">'
            f"{b.value}</text></g>"
        )
    return _svg(width, row * len(bars) + 4, "".join(parts), title)


def stacked_bar(bars: Sequence[Bar], *, title: str, width: int = 560) -> SafeString:
    """One bar split by share (e.g. sites by status), with a legend underneath."""
    total = sum(b.value for b in bars if b.value > 0)
    if not total:
        return _svg(
            width, 30, f'<text x="0" y="20" fill="#666">{escape("No sites yet.")}</text>', title
        )
    parts, x = [], 0.0
    shown = [b for b in bars if b.value > 0]
    for b in shown:
        w = width * b.value / total
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="22" fill="{escape(b.colour)}">'
            f"<title>{escape(b.label)}: {b.value}</title></rect>"
        )
        x += w
    lx, ly = 0, 42
    for b in shown:
        text = f"{b.label} {b.value}"
        parts.append(
            f'<rect x="{lx}" y="{ly - 10}" width="10" height="10" fill="{escape(b.colour)}"/>'
            f'<text x="{lx + 14}" y="{ly}">{escape(text)}</text>'
        )
        lx += 24 + 7 * len(text)
        if lx > width - 120:
            lx, ly = 0, ly + 18
    return _svg(width, ly + 8, "".join(parts), title)


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[int]  # one per point
    colour: str


def stacked_area(
    points: Sequence[str], series: Sequence[Series], *, title: str, width: int = 640
) -> SafeString:
    """Stacked areas of ``series`` over ``points`` (x labels), bottom series first; a legend."""
    height, left, bottom, right = 180, 40, 40, 10
    if len(points) < 2 or not series:
        text = escape("Not enough rollout history yet: this fills in as rollouts finish.")
        return _svg(width, 30, f'<text x="0" y="20" fill="#666">{text}</text>', title)
    plot_w, plot_h = width - left - right, height - bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(points))]
    top = max(totals) or 1
    step = plot_w / (len(points) - 1)

    def xy(i: int, v: float) -> str:
        return f"{left + i * step:.1f},{plot_h - plot_h * v / top + 4:.1f}"

    parts = [
        f'<line x1="{left}" y1="{plot_h + 4}" x2="{width - right}" y2="{plot_h + 4}" '
        'stroke="#999"/>',
        f'<text x="{left - 6}" y="{14}" text-anchor="end" fill="#666">{top}</text>',
        f'<text x="{left - 6}" y="{plot_h + 4}" text-anchor="end" fill="#666">0</text>',
    ]
    base = [0] * len(points)
    for s in series:
        upper = [base[i] + s.values[i] for i in range(len(points))]
        outline = [xy(i, upper[i]) for i in range(len(points))]
        outline += [xy(i, base[i]) for i in reversed(range(len(points)))]
        last = s.values[-1]
        parts.append(
            f'<polygon class="area" points="{" ".join(outline)}" fill="{escape(s.colour)}" '
            f'fill-opacity="0.85" stroke="#fff" stroke-width="0.5">'
            f"<title>{escape(s.label)}: {last} now</title></polygon>"
        )
        base = upper
    for i, label in enumerate(points):
        anchor = "start" if i == 0 else "end" if i == len(points) - 1 else "middle"
        parts.append(
            f'<text x="{left + i * step:.1f}" y="{plot_h + 20}" text-anchor="{anchor}" '
            f'fill="#444">{escape(label)}</text>'
        )
    lx, ly = left, plot_h + 36
    for s in reversed(series):
        text = f"{s.label} ({s.values[-1]})"
        parts.append(
            f'<rect x="{lx}" y="{ly - 10}" width="10" height="10" fill="{escape(s.colour)}"/>'
            f'<text x="{lx + 14}" y="{ly}">{escape(text)}</text>'
        )
        lx += 24 + 7 * len(text)
        if lx > width - 160:
            lx, ly = left, ly + 16
    return _svg(width, ly + 8, "".join(parts), title)
