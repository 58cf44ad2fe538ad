"""Charts as inline SVG drawn on the server: no JavaScript library, no CDN, printable.

Each chart is an ``<svg role="img">`` with a ``<title>`` (its name for screen readers); the numbers
it draws are also in a table next to it on the page.
"""
from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

COLOURS = ("#0b5cad", "#d9822b", "#1e7b34", "#a12622")
WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 34


def _percent_axis(height: float) -> list[str]:
    parts = []
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = TOP + height * (1 - tick)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d7dde4"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#5b6876">'
                     f'{int(tick * 100)}%</text>')
    return parts


def _legend(names: Sequence[str]) -> list[str]:
    parts, x = [], LEFT
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f'<rect x="{x}" y="{HEIGHT - 12}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="{HEIGHT - 3}" font-size="11" fill="#1d2733">{escape(name)}</text>')
        x += 24 + 8 * len(name) + 20
    return parts


def _svg(title: str, body: list[str]) -> Markup:
    return Markup(f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
                  f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
                  f'<title>{escape(title)}</title>{"".join(body)}</svg>')


def rate_lines(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]]) -> Markup:
    """Rates (0..1) over ``labels`` (days), one line per series; a day without data breaks the line."""
    height = HEIGHT - TOP - BOTTOM
    width = WIDTH - LEFT - RIGHT
    step = width / max(len(labels) - 1, 1)
    body = _percent_axis(height)
    for i, label in enumerate(labels):
        if len(labels) <= 8 or i % max(1, len(labels) // 6) == 0 or i == len(labels) - 1:
            body.append(f'<text x="{LEFT + i * step:.1f}" y="{TOP + height + 14}" text-anchor="middle" '
                        f'font-size="11" fill="#5b6876">{escape(label[5:])}</text>')
    for k, (name, values) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        run: list[str] = []
        for i, value in enumerate(list(values) + [None]):
            if value is not None:
                x, y = LEFT + i * step, TOP + height * (1 - min(max(value, 0.0), 1.0))
                run.append(f"{x:.1f},{y:.1f}")
                body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>')
            elif run:
                if len(run) > 1:
                    body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(run)}"/>')
                run = []
    body += _legend(list(series))
    return _svg(title, body)


def rate_bars(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]]) -> Markup:
    """Rates (0..1) per label (manager, branch, class), one bar per series side by side."""
    height = HEIGHT - TOP - BOTTOM
    width = WIDTH - LEFT - RIGHT
    group = width / max(len(labels), 1)
    bar = min(28.0, group * 0.8 / max(len(series), 1))
    body = _percent_axis(height)
    for i, label in enumerate(labels):
        x0 = LEFT + i * group + (group - bar * len(series)) / 2
        for k, values in enumerate(series.values()):
            value = values[i]
            if value is None:
                continue
            h = height * min(max(value, 0.0), 1.0)
            body.append(f'<rect x="{x0 + k * bar:.1f}" y="{TOP + height - h:.1f}" width="{bar - 2:.1f}" '
                        f'height="{h:.1f}" fill="{COLOURS[k % len(COLOURS)]}"/>')
        body.append(f'<text x="{LEFT + (i + 0.5) * group:.1f}" y="{TOP + height + 14}" text-anchor="middle" '
                    f'font-size="11" fill="#5b6876">{escape(label[:14])}</text>')
    body += _legend(list(series))
    return _svg(title, body)
