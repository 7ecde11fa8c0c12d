"""
Charts drawn on the server as SVG text: no script, no CDN, no build step, so the views work
offline and on MWAA. Every value is escaped; the functions are pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT = 560, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 16, 24, 44
PRODUCTION_COLOUR = "#1f9d55"
POINT_COLOUR = "#3165c4"
CELL = 56


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def metric_chart(metric: str, points: Sequence[Mapping[str, Any]]) -> str:
    """
    One metric across versions: a line through one ``circle.point`` per version, oldest first;
    the production version's point is ``circle.point.production``, larger, green and labelled.

    :param points: ``[{"semver", "value", "production"}]`` (see :func:`.data.metric_series`).
    """
    if not points:
        return ""
    values = [float(p["value"]) for p in points]
    low, high = min(values), max(values)
    if high - low < 1e-12:
        low, high = low - 0.5 if low else -0.5, high + 0.5 if high else 0.5
    span = high - low
    low, high = low - span * 0.1, high + span * 0.1
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    step = plot_w / (len(points) - 1) if len(points) > 1 else 0.0

    def x(i: int) -> float:
        return PAD_LEFT + (i * step if len(points) > 1 else plot_w / 2)

    def y(value: float) -> float:
        return PAD_TOP + plot_h * (1 - (value - low) / (high - low))

    name = escape(metric)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="metric-chart" data-metric="{name}" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{name} across versions">',
        f'<text x="{PAD_LEFT}" y="16" font-size="13" font-weight="bold">{name}</text>',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP + plot_h}" x2="{WIDTH - PAD_RIGHT}" y2="{PAD_TOP + plot_h}" stroke="#999"/>',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" y2="{PAD_TOP + plot_h}" stroke="#999"/>',
    ]
    for tick in (low, (low + high) / 2, high):
        parts.append(f'<text x="{PAD_LEFT - 6}" y="{y(tick) + 4:.1f}" font-size="10" text-anchor="end">{_fmt(tick)}</text>')
    if len(points) > 1:
        line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(f'<polyline points="{line}" fill="none" stroke="{POINT_COLOUR}" stroke-width="2"/>')
    for i, (point, value) in enumerate(zip(points, values, strict=True)):
        semver = escape(str(point["semver"]))
        production = bool(point.get("production"))
        css = "point production" if production else "point"
        colour, radius = (PRODUCTION_COLOUR, 7) if production else (POINT_COLOUR, 4)
        parts.append(
            f'<circle class="{css}" data-version="{semver}" data-value="{value}" cx="{x(i):.1f}" cy="{y(value):.1f}" '
            f'r="{radius}" fill="{colour}"><title>{semver}: {_fmt(value)}{" (production)" if production else ""}</title></circle>'
        )
        parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - 24}" font-size="10" text-anchor="middle">{semver}</text>')
        if production:
            parts.append(f'<text x="{x(i):.1f}" y="{y(value) - 11:.1f}" font-size="10" text-anchor="middle" '
                         f'fill="{PRODUCTION_COLOUR}">production</text>')
    parts.append("</svg>")
    return "".join(parts)


def confusion_matrix_svg(matrix: Mapping[str, Any]) -> str:
    """
    A confusion matrix as a heat map: rows are the actual class, columns the predicted one;
    each ``rect.cell`` is shaded by its share of its row and carries its count.

    :param matrix: ``{"labels": [...], "matrix": [[...]]}`` (see :func:`.data.confusion_matrix`).
    """
    labels = [str(label) for label in matrix["labels"]]
    values = matrix["matrix"]
    size = len(values)
    left, top = 110, 60
    width, height = left + CELL * size + 16, top + CELL * size + 16
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="confusion-matrix" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="confusion matrix">',
        f'<text x="{left}" y="16" font-size="12">predicted</text>',
        f'<text x="4" y="{top - 8}" font-size="12">actual</text>',
    ]
    for j, label in enumerate(labels):
        parts.append(f'<text x="{left + CELL * j + CELL / 2}" y="{top - 8}" font-size="11" text-anchor="middle">{escape(label)}</text>')
    for i, row in enumerate(values):
        total = sum(row) or 1.0
        parts.append(f'<text x="{left - 8}" y="{top + CELL * i + CELL / 2 + 4}" font-size="11" text-anchor="end">'
                     f'{escape(labels[i] if i < len(labels) else str(i))}</text>')
        for j, count in enumerate(row):
            share = float(count) / total
            colour = f"rgba(49, 101, 196, {0.08 + 0.82 * share:.2f})"
            text = f"{count:g}" if isinstance(count, (int, float)) else escape(str(count))
            parts.append(
                f'<rect class="cell" data-row="{i}" data-col="{j}" x="{left + CELL * j}" y="{top + CELL * i}" '
                f'width="{CELL - 2}" height="{CELL - 2}" fill="{colour}"/>'
                f'<text x="{left + CELL * j + CELL / 2 - 1}" y="{top + CELL * i + CELL / 2 + 4}" font-size="13" '
                f'text-anchor="middle">{text}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
