"""Charts drawn on the server as inline SVG: sparklines, a heatmap and bar charts.

No chart library and no script: the console's pages stay readable without JavaScript and
under a strict Content-Security-Policy (SVG presentation attributes are not inline styles).
Every label is escaped by :meth:`markupsafe.Markup.format`; the functions return
:class:`markupsafe.Markup` for the templates to insert as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup

PALETTE = ("#0f766e", "#2563eb", "#d97706", "#9333ea", "#dc2626", "#4b5563")
"""Series colours, in order."""


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 24) -> Markup:
    """A line of ``values`` (oldest first), scaled to its own range; empty for no values."""
    if not values:
        return Markup('<svg class="spark" width="{}" height="{}" role="img" aria-label="no '
                      'history"></svg>').format(width, height)  # fmt: skip
    top, low = max(values), min(values)
    span = (top - low) or 1.0
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}"
        for i, v in enumerate(values)
    )
    if len(values) == 1:
        points += f" {width:.1f},{height - 2 - (values[0] - low) / span * (height - 4):.1f}"
    label = f"from {values[0]:g} to {values[-1]:g}, highest {top:g}"
    end_y = height - 2 - (values[-1] - low) / span * (height - 4)
    return Markup(
        '<svg class="spark" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        'aria-label="{label}"><polyline fill="none" stroke="{c}" stroke-width="1.5" '
        'points="{p}"/><circle cx="{x}" cy="{y:.1f}" r="2" fill="{c}"/></svg>'
    ).format(w=width, h=height, label=label, c=PALETTE[0], p=points, x=width - 2, y=end_y)


def heatmap(names: Sequence[str], cells: Mapping[tuple[str, str], tuple[int, float]]) -> Markup:
    """A square of segments: each cell's shade is the pair's Jaccard index.

    Args:
        names: The segments, in the order of rows and columns.
        cells: (a, b) → (shared members, Jaccard index), either order.
    """
    cell, label_w = 34, max((len(n) for n in names), default=4) * 7 + 10
    size = label_w + cell * len(names)
    parts = [
        Markup(
            '<svg class="heatmap" width="{s}" height="{s}" viewBox="0 0 {s} {s}" '
            'role="img" aria-label="overlap of segments">'
        ).format(s=size)  # fmt: skip
    ]
    for i, name in enumerate(names):
        y = label_w + i * cell + cell / 2 + 4
        parts.append(Markup('<text x="{x}" y="{y}" text-anchor="end" font-size="11">{n}</text>')
                     .format(x=label_w - 6, y=y, n=name))  # fmt: skip
        parts.append(Markup('<text transform="translate({x},{y}) rotate(-60)" font-size="11">'
                            "{n}</text>").format(x=label_w + i * cell + cell / 2,
                                                 y=label_w - 6, n=name))  # fmt: skip
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            shared, jaccard = (0, 1.0) if a == b else cells.get((a, b), cells.get((b, a), (0, 0.0)))
            shade = _shade(jaccard)
            title = f"{a} & {b}: {shared} shared, Jaccard {jaccard:.2f}" if a != b else a
            parts.append(Markup(
                '<rect x="{x}" y="{y}" width="{c}" height="{c}" fill="{f}" stroke="#fff" '
                'data-pair="{a}|{b}"><title>{t}</title></rect>'
            ).format(x=label_w + j * cell, y=label_w + i * cell, c=cell, f=shade, a=a, b=b,
                     t=title))  # fmt: skip
            if a != b and shared:
                parts.append(Markup(
                    '<text x="{x}" y="{y}" text-anchor="middle" font-size="10" fill="{ink}">'
                    "{v}</text>"
                ).format(x=label_w + j * cell + cell / 2, y=label_w + i * cell + cell / 2 + 3,
                         ink="#fff" if jaccard > 0.5 else "#1d2330",
                         v=f"{jaccard:.2f}".lstrip("0")))  # fmt: skip
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _shade(fraction: float) -> str:
    """White to the accent colour."""
    f = max(0.0, min(1.0, fraction))
    r, g, b = (round(255 + (t - 255) * f) for t in (15, 118, 110))
    return f"#{r:02x}{g:02x}{b:02x}"


def bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    width: int = 640,
    height: int = 220,
    percent: bool = False,
) -> Markup:
    """Grouped bars: one group per ``groups`` entry, one bar per series, with a legend.

    ``None`` values draw no bar. With ``percent`` the values are fractions shown as %.
    """
    values = [v for s in series.values() for v in s if v is not None]
    top = max(values, default=0.0) or 1.0
    pad_l, pad_b, legend = 46, 34, 18
    plot_w, plot_h = width - pad_l - 8, height - pad_b - legend
    group_w = plot_w / max(len(groups), 1)
    bar_w = min(60.0, max(2.0, (group_w - 8) / max(len(series), 1)))
    out = [Markup('<svg class="bars" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
                  'aria-label="bar chart">').format(w=width, h=height)]  # fmt: skip
    for tick in (0.0, 0.5, 1.0):
        y = legend + plot_h * (1 - tick)
        text = f"{top * tick:.0%}" if percent else f"{top * tick:,.0f}"
        out.append(Markup('<line x1="{a}" x2="{b}" y1="{y}" y2="{y}" stroke="#e3e6ec"/>'
                          '<text x="{t}" y="{ty}" text-anchor="end" font-size="10">{v}</text>')
                   .format(a=pad_l, b=width - 8, y=y, t=pad_l - 4, ty=y + 3, v=text))  # fmt: skip
    for s, (name, row) in enumerate(series.items()):
        colour = PALETTE[s % len(PALETTE)]
        key = Markup('<rect x="{x}" y="4" width="10" height="10" fill="{c}"/>'
                     '<text x="{tx}" y="13" font-size="11">{n}</text>')  # fmt: skip
        out.append(key.format(x=pad_l + s * 110, c=colour, tx=pad_l + s * 110 + 14, n=name))
        for g, value in enumerate(row):
            if value is None:
                continue
            h = plot_h * value / top
            shown = f"{value:.1%}" if percent else f"{value:,.2f}".rstrip("0").rstrip(".")
            out.append(Markup(
                '<rect x="{x}" y="{y}" width="{bw}" height="{bh}" fill="{c}">'
                "<title>{g}: {n} {v}</title></rect>"
            ).format(x=pad_l + g * group_w + 4 + s * bar_w, y=legend + plot_h - h, bw=bar_w - 1,
                     bh=h, c=colour, g=groups[g], n=name, v=shown))  # fmt: skip
    for g, label in enumerate(groups):
        out.append(Markup('<text x="{x}" y="{y}" text-anchor="middle" font-size="11">{t}</text>')
                   .format(x=pad_l + g * group_w + group_w / 2, y=height - 16,
                           t=label if len(label) <= 18 else label[:17] + "…"))  # fmt: skip
    out.append(Markup("</svg>"))
    return Markup("").join(out)
