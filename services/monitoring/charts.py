"""SVG charts of the statistics, written by hand: small, valid, self-contained documents (no scripts, no external
resources), for people who would rather look than read.

Every label passes through XML escaping (text and attributes), so a name with `<`, `&` or quotes cannot break the
document. Each bar is a `<g class="bar">` carrying `data-label` and `data-value` (machine-readable, e.g.
`1234.50`) next to the text people read (`1.234,50 €`, Italian style); a suppressed value has
`data-suppressed="true"` and no rectangle. A time series is one `<polyline>` with a point per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from xml.sax.saxutils import escape, quoteattr

SVG_MEDIA_TYPE = "image/svg+xml"
_FONT = "font-family:DejaVu Sans,Verdana,Arial,sans-serif"
_STYLE = (
    f"text{{{_FONT};font-size:12px;fill:#1f2933}}.title{{font-size:16px;font-weight:bold}}"
    ".subtitle{fill:#52606d}.value{fill:#323f4b}.axis{stroke:#9aa5b1;stroke-width:1}"
    ".bar rect{fill:#0b6e4f}.series{fill:none;stroke:#0b6e4f;stroke-width:1.5}.muted{fill:#9aa5b1}"
)


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: Decimal | int | None
    """None: suppressed (too few applications to show)."""
    display: str
    """The value as people read it."""


def format_int(n: int) -> str:
    """12345 -> '12.345' (Italian grouping)."""
    return f"{n:,}".replace(",", ".")


def _n(x: float) -> str:
    """A coordinate, short: at most one decimal."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _open(width: int, height: int, title: str, desc: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title chart-desc">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(desc)}</desc>',
        f"<style>{_STYLE}</style>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text class="title" x="16" y="26">{escape(title)}</text>',
    ]


def bar_chart(*, title: str, subtitle: str, bars: Sequence[Bar], width: int = 760) -> str:
    """Horizontal bars, one per label, in the order given; the longest bar spans the plot width."""
    label_w, value_w, row_h, top = 190, 150, 26, 64
    plot_w = width - label_w - value_w - 16
    height = top + row_h * max(len(bars), 1) + 24
    peak = max((Decimal(b.value) for b in bars if b.value is not None), default=Decimal(0))
    out = _open(width, height, title, subtitle)
    out.append(f'<text class="subtitle" x="16" y="46">{escape(subtitle)}</text>')
    out.append(f'<line class="axis" x1="{label_w}" y1="{top - 6}" x2="{label_w}" y2="{top + row_h * len(bars)}"/>')
    for i, bar in enumerate(bars):
        y = top + i * row_h
        attrs = f"data-label={quoteattr(bar.label)}"
        if bar.value is None:
            attrs += ' data-suppressed="true"'
        else:
            attrs += f" data-value={quoteattr(str(bar.value))}"
        out.append(f'<g class="bar" {attrs}>')
        out.append(f'<text class="label" x="{label_w - 8}" y="{y + 17}" text-anchor="end">{escape(bar.label)}</text>')
        x_value = label_w + 6
        if bar.value is not None:
            w = float(Decimal(bar.value) / peak) * plot_w if peak > 0 else 0.0
            out.append(f'<rect x="{label_w}" y="{y + 4}" width="{_n(w)}" height="{row_h - 8}"/>')
            x_value = label_w + int(w) + 6
        css = "value" if bar.value is not None else "value muted"
        out.append(f'<text class="{css}" x="{x_value}" y="{y + 17}">{escape(bar.display)}</text>')
        out.append("</g>")
    if not bars:
        out.append(f'<text class="muted" x="{label_w + 8}" y="{top + 17}">nessun dato / no data</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def time_series(
    *, title: str, subtitle: str, points: Sequence[tuple[datetime, int]], width: int = 860, height: int = 340
) -> str:
    """A line over equally spaced steps (e.g. the hours of a call's window), with the peak marked on the y axis
    and up to eight dates on the x axis."""
    left, right, top, bottom = 56, 16, 64, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v for _, v in points), default=0)
    total = sum(v for _, v in points)
    out = _open(width, height, title, f"{subtitle} Totale / total: {total}; picco / peak: {peak}.")
    out.append(f'<text class="subtitle" x="16" y="46">{escape(subtitle)}</text>')
    x0, y0 = left, top + plot_h
    out.append(f'<line class="axis" x1="{x0}" y1="{top}" x2="{x0}" y2="{y0}"/>')
    out.append(f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x0 + plot_w}" y2="{y0}"/>')
    out.append(
        f'<text class="tick y-max" x="{x0 - 6}" y="{top + 4}" text-anchor="end" '
        f'data-value="{peak}">{format_int(peak)}</text>'
    )
    out.append(f'<text class="tick" x="{x0 - 6}" y="{y0 + 4}" text-anchor="end">0</text>')
    n = len(points)
    step = plot_w / (n - 1) if n > 1 else 0.0

    def xy(i: int, v: int) -> str:
        y = y0 - (v / peak * plot_h if peak else 0.0)
        return f"{_n(x0 + i * step)},{_n(y)}"

    if n:
        coords = " ".join(xy(i, v) for i, (_, v) in enumerate(points))
        out.append(f'<polyline class="series" data-points="{n}" data-total="{total}" points="{coords}"/>')
        every = max(1, n // 8)
        for i in range(0, n, every):
            when = points[i][0]
            out.append(
                f'<text class="tick x" x="{_n(x0 + i * step)}" y="{y0 + 18}" text-anchor="middle">'
                f"{escape(when.strftime('%d/%m %H:%M'))}</text>"
            )
    else:
        out.append(f'<text class="muted" x="{x0 + 8}" y="{top + 20}">nessun dato / no data</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
