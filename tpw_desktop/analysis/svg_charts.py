"""Small SVG charts for reports: bars with error bars, a labelled scatter, a line over a setting.

Plain strings, no Qt and no plotting library: a report must be one file
that opens in any browser and can be attached to a forum post. Every axis
is labelled with its unit.
"""

from __future__ import annotations

import html
import math

from .labels import wrapped

WIDTH, HEIGHT = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 64
COLORS = ("#4f9dde", "#e4572e", "#2ca02c", "#a463f2", "#f2a541", "#17bebb", "#888888")


def _nice_max(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value * 1.05))
    for step in (1, 2, 2.5, 5, 10):
        if step * 10**exponent >= value * 1.05:
            return step * 10**exponent
    return 10 ** (exponent + 1)


def _frame(title: str, y_label: str, y_max: float, x_label: str = "") -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f"<title>{html.escape(title)}</title>",
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
        f'<text transform="translate(14 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">'
        f"{html.escape(y_label)}</text>",
    ]
    for i in range(5):
        value = y_max * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.4g}</text>')
    if x_label:
        parts.append(
            f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{html.escape(x_label)}</text>"
        )
    return parts


def _label_lines(x: float, y: float, label: str, width_px: float) -> str:
    """A label under a bar, wrapped to the bar's slot (about 6.5 px a character at 11 px type)."""
    lines = wrapped(label, max(int(width_px / 6.5), 4))[:3]
    spans = "".join(
        f'<tspan x="{x:.1f}" dy="{0 if i == 0 else 13}">{html.escape(t)}</tspan>' for i, t in enumerate(lines)
    )
    return f'<text x="{x:.1f}" y="{y}" text-anchor="middle">{spans}</text>'


def bars(
    title: str,
    y_label: str,
    labels: list[str],
    means: list[float | None],
    sds: list[float | None],
    names: list[str] | None = None,
) -> str:
    """One bar per label, with its ± sd; an unknown value is a labelled gap, never a zero bar.

    ``names``: each bar's full name, in its tooltip (the label may be only what tells it apart).
    """
    names = names or labels
    top = max(((m or 0) + (s or 0) for m, s in zip(means, sds)), default=0)
    y_max = _nice_max(top)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(title, y_label, y_max)
    slot = plot_w / max(len(labels), 1)
    for i, (label, name, mean, sd) in enumerate(zip(labels, names, means, sds)):
        x = LEFT + slot * i + slot * 0.15
        w = slot * 0.7
        cx = x + w / 2
        parts.append(_label_lines(cx, HEIGHT - BOTTOM + 14, label, slot))
        if mean is None:
            parts.append(f'<text x="{cx:.1f}" y="{TOP + plot_h - 6}" text-anchor="middle" fill="#999">unknown</text>')
            continue
        h = plot_h * mean / y_max
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{w:.1f}" height="{h:.1f}" '
            f'fill="{COLORS[i % len(COLORS)]}"><title>{html.escape(name)}: {mean:.4g}</title></rect>'
        )
        if sd:
            y_hi, y_lo = TOP + plot_h - plot_h * (mean + sd) / y_max, TOP + plot_h - plot_h * max(mean - sd, 0) / y_max
            parts.append(
                f'<path class="error" d="M{cx:.1f} {y_hi:.1f}V{y_lo:.1f}M{cx - 6:.1f} {y_hi:.1f}h12'
                f'M{cx - 6:.1f} {y_lo:.1f}h12" stroke="#222" fill="none"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def scatter(
    title: str,
    x_label: str,
    y_label: str,
    points: list[tuple[str, float | None, float | None]],
    names: list[str] | None = None,
) -> str:
    """Labelled points (the efficiency frontier: tok/s against tok/J), each point's full name in its tooltip.

    Labels go right of their point, or left in the right half, and below instead of above when the
    point before (in height) sits close: points close together keep legible labels.
    """
    names = names or [label for label, _, _ in points]
    known = [(label, name, x, y) for (label, x, y), name in zip(points, names) if x is not None and y is not None]
    x_max = _nice_max(max((x for _, _, x, _ in known), default=1))
    y_max = _nice_max(max((y for _, _, _, y in known), default=1))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(title, y_label, y_max, x_label)
    for i in range(5):
        x = LEFT + plot_w * i / 4
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">{x_max * i / 4:.4g}</text>')
    placed: list[tuple[float, float]] = []
    for i, (label, name, x, y) in enumerate(known):
        px, py = LEFT + plot_w * x / x_max, TOP + plot_h - plot_h * y / y_max
        parts.append(
            f'<circle class="point" cx="{px:.1f}" cy="{py:.1f}" r="5" fill="{COLORS[i % len(COLORS)]}">'
            f"<title>{html.escape(name)}: {x:.4g}, {y:.4g}</title></circle>"
        )
        crowded = any(abs(px - qx) < 90 and abs(py - qy) < 14 for qx, qy in placed)
        dy = 16 if crowded else -6
        left = px > LEFT + plot_w / 2
        anchor = ' text-anchor="end"' if left else ""
        parts.append(
            f'<text x="{px - 7 if left else px + 7:.1f}" y="{py + dy:.1f}"{anchor}>{html.escape(label)}</text>'
        )
        placed.append((px, py + dy))
    parts.append("</svg>")
    return "".join(parts)


def curve(
    title: str, x_label: str, y_label: str, xs: list[float], ys: list[float | None], best_x: float | None = None
) -> str:
    """A line over a setting (tok/J against the power cap), the best value marked."""
    known = [(x, y) for x, y in zip(xs, ys) if y is not None]
    if not known:
        return bars(title, y_label, [f"{x:g}" for x in xs], [None] * len(xs), [None] * len(xs))
    x_lo, x_hi = min(xs), max(xs)
    span = (x_hi - x_lo) or 1
    y_max = _nice_max(max(y for _, y in known))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(title, y_label, y_max, x_label)

    def px(x: float) -> float:
        return LEFT + plot_w * (x - x_lo) / span

    def py(y: float) -> float:
        return TOP + plot_h - plot_h * y / y_max

    for x in xs:
        parts.append(f'<text x="{px(x):.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">{x:g}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f} {py(y):.1f}" for i, (x, y) in enumerate(known))
    parts.append(f'<path class="curve" d="{path}" stroke="{COLORS[0]}" stroke-width="2" fill="none"/>')
    for x, y in known:
        parts.append(
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{COLORS[0]}"><title>{x:g}: {y:.4g}</title></circle>'
        )
    if best_x is not None:
        y = dict(known).get(best_x)
        if y is not None:
            parts.append(
                f'<circle class="best" cx="{px(best_x):.1f}" cy="{py(y):.1f}" r="8" fill="none" '
                f'stroke="#e4572e" stroke-width="2"/><text x="{px(best_x):.1f}" y="{py(y) - 12:.1f}" '
                f'text-anchor="middle" fill="#e4572e">best</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
