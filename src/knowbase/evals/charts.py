"""Inline SVG charts for the HTML reports: no script, no CDN, no plotting library.

Every label is escaped (:func:`html.escape`), so text from test sets or documents never
becomes markup. Each function returns one ``<svg>`` element as a string.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["bar_chart", "histogram", "diff_chart"]

_FONT = 'font-family="system-ui,sans-serif" font-size="12"'
COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2")


def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def bar_chart(rows: Sequence[tuple[str, Sequence[float | None]]], *, series: Sequence[str] = ("",),
              errors: Sequence[Sequence[float | None]] | None = None, width: int = 640, max_value: float = 1.0,
              title: str = "") -> str:
    """Horizontal grouped bars: one group per row label, one bar per series.

    Args:
        rows: ``(label, values)``; a None value is drawn as "unmeasured".
        series: series names (a legend is drawn when there are two or more).
        errors: optional half-widths of error whiskers, same shape as the values.
        max_value: the value at the right edge (1.0 for shares).
        title: a caption above the chart.
    """
    bar_h, gap, label_w, pad = 14, 8, 190, 10
    n_series = max(1, len(series))
    group_h = n_series * bar_h + gap
    top = 24 if title else 6
    legend_h = 20 if n_series > 1 else 0
    height = top + legend_h + len(rows) * group_h + pad
    plot_w = width - label_w - 70
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" {_FONT} role="img">']
    if title:
        out.append(f'<text x="4" y="16" font-weight="bold">{escape(title)}</text>')
    if n_series > 1:
        for s, name in enumerate(series):
            x = label_w + s * 150
            out.append(f'<rect x="{x}" y="{top}" width="10" height="10" fill="{COLORS[s % len(COLORS)]}"/>'
                       f'<text x="{x + 14}" y="{top + 9}">{escape(name)}</text>')
    y = top + legend_h
    for r, (label, values) in enumerate(rows):
        out.append(f'<text x="{label_w - 6}" y="{y + group_h / 2}" text-anchor="end">{escape(label)}</text>')
        for s in range(n_series):
            value = values[s] if s < len(values) else None
            by = y + s * bar_h
            if value is None or (isinstance(value, float) and math.isnan(value)):
                out.append(f'<text x="{label_w + 4}" y="{by + 11}" fill="#888">unmeasured</text>')
                continue
            w = max(0.0, min(1.0, value / max_value if max_value else 0.0)) * plot_w
            out.append(f'<rect x="{label_w}" y="{by + 1}" width="{w:.1f}" height="{bar_h - 2}" '
                       f'fill="{COLORS[s % len(COLORS)]}"><title>{escape(label)}: {_num(value)}</title></rect>')
            err = errors[r][s] if errors is not None and r < len(errors) and s < len(errors[r]) else None
            if err:
                lo = label_w + max(0.0, (value - err) / max_value) * plot_w
                hi = label_w + min(1.0, (value + err) / max_value) * plot_w
                mid = by + bar_h / 2
                out.append(f'<line x1="{lo:.1f}" x2="{hi:.1f}" y1="{mid}" y2="{mid}" stroke="#222"/>')
            out.append(f'<text x="{label_w + w + 4:.1f}" y="{by + 11}">{_num(value)}</text>')
        y += group_h
    out.append("</svg>")
    return "".join(out)


def histogram(values: Sequence[float], *, bins: int = 12, unit: str = "s", width: int = 640, height: int = 180,
              title: str = "") -> str:
    """A histogram of ``values`` (for latencies), equal-width bins from min to max."""
    top = 24 if title else 6
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + top + 24}" {_FONT} role="img">']
    if title:
        out.append(f'<text x="4" y="16" font-weight="bold">{escape(title)}</text>')
    if not values:
        out.append(f'<text x="4" y="{top + 20}" fill="#888">no values</text></svg>')
        return "".join(out)
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    bins = max(1, min(bins, len(values)))
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / span * bins))] += 1
    peak = max(counts)
    left, plot_w = 40, width - 50
    bw = plot_w / bins
    for i, c in enumerate(counts):
        h = c / peak * (height - 10)
        x = left + i * bw
        b_lo, b_hi = lo + span * i / bins, lo + span * (i + 1) / bins
        out.append(f'<rect x="{x + 1:.1f}" y="{top + height - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" '
                   f'fill="{COLORS[0]}"><title>{_num(b_lo)}-{_num(b_hi)} {escape(unit)}: {c}</title></rect>')
    out.append(f'<text x="{left}" y="{top + height + 16}">{_num(lo)} {escape(unit)}</text>')
    out.append(f'<text x="{left + plot_w}" y="{top + height + 16}" text-anchor="end">{_num(hi)} {escape(unit)}</text>')
    out.append(f'<text x="4" y="{top + 12}">{peak}</text>')
    out.append("</svg>")
    return "".join(out)


def diff_chart(rows: Sequence[tuple[str, float | None, float | None, float | None]], *, width: int = 640,
               title: str = "") -> str:
    """Differences with confidence intervals around a zero line: ``(label, diff, low, high)``.

    The x range is symmetric around zero and fits every interval.
    """
    row_h, label_w = 20, 190
    top = 24 if title else 6
    height = top + len(rows) * row_h + 24
    plot_w = width - label_w - 20
    extent = max([abs(v) for _, d, lo, hi in rows for v in (d, lo, hi) if v is not None] + [1e-9])
    def x_of(v: float) -> float:
        return label_w + (v / extent + 1) / 2 * plot_w
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" {_FONT} role="img">']
    if title:
        out.append(f'<text x="4" y="16" font-weight="bold">{escape(title)}</text>')
    zero = x_of(0.0)
    out.append(f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{top}" y2="{height - 20}" stroke="#999"/>')
    for i, (label, diff, lo, hi) in enumerate(rows):
        y = top + i * row_h + row_h / 2
        out.append(f'<text x="{label_w - 6}" y="{y + 4}" text-anchor="end">{escape(label)}</text>')
        if diff is None:
            out.append(f'<text x="{label_w + 4}" y="{y + 4}" fill="#888">unmeasured</text>')
            continue
        if lo is not None and hi is not None:
            color = COLORS[2] if lo > 0 else COLORS[3] if hi < 0 else "#555"
            out.append(f'<line x1="{x_of(lo):.1f}" x2="{x_of(hi):.1f}" y1="{y}" y2="{y}" stroke="{color}" '
                       f'stroke-width="2"/>')
        out.append(f'<circle cx="{x_of(diff):.1f}" cy="{y}" r="4" fill="#222"><title>{escape(label)}: {diff:+.3g}'
                   f'</title></circle>')
    out.append(f'<text x="{label_w}" y="{height - 6}">{-extent:+.3g}</text>'
               f'<text x="{zero:.1f}" y="{height - 6}" text-anchor="middle">0</text>'
               f'<text x="{label_w + plot_w}" y="{height - 6}" text-anchor="end">{extent:+.3g}</text>')
    out.append("</svg>")
    return "".join(out)
