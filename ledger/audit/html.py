"""The HTML report: one self-contained page (no scripts, fonts or files from elsewhere) with
the report tables and a timeline chart of privileged-role holdings, drawn as inline SVG."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from typing import Final

import pandas as pd

from ledger.audit.evidence import Evidence

ROLE_COLOURS: Final = {
    "admin": "#c0392b",
    "admin-reader": "#e67e22",
    "account-admin": "#2980b9",
    "consultant": "#27ae60",
}
_STYLE: Final = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f3f3f3; } .meta { color: #666; } .empty { color: #888; font-style: italic; }
.not-verified { background: #c0392b; color: #fff; padding: 0.5rem 1rem; font-weight: bold; }
svg text { font-size: 11px; fill: #333; } .legend span { display: inline-block; width: 12px;
height: 12px; margin: 0 0.3rem 0 1rem; vertical-align: middle; }
"""


def render(
    title: str,
    generated_at: datetime,
    period: tuple[datetime, datetime],
    sections: list[tuple[str, pd.DataFrame]],
    timeline: pd.DataFrame,
    evidence: Evidence,
) -> str:
    start, end = period
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _verified(evidence),
        f'<p class="meta">Period {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; '
        f"generated {generated_at:%Y-%m-%d %H:%M} UTC from the event log.</p>",
        "<h2>Privileged-role holdings over the period</h2>",
        _legend(),
        _timeline(timeline, start, end),
        _evidence(evidence),
    ]
    for heading, frame in sections:
        parts.append(f"<h2>{escape(heading)} ({len(frame)})</h2>")
        parts.append(_table(frame))
    parts.append("</body></html>")
    return "\n".join(parts)


def _verified(evidence: Evidence) -> str:
    """Under the title: the chain the page was made from, or a NOT VERIFIED banner."""
    problem = evidence.problem()
    if problem is not None:
        return f'<p class="not-verified">NOT VERIFIED: {escape(problem)}</p>'
    head = evidence.chain.head
    where = "an empty log" if head is None else f"head position {head.position}, hash {head.hash}"
    return (
        f'<p class="meta verified">Integrity chain verified: {evidence.chain.events} events, '
        f"{where}. See Evidence below.</p>"
    )


def _evidence(evidence: Evidence) -> str:
    """The stamp in full, as the CSV comment lines and the JSON fields say it."""
    items = "".join(f"<li>{escape(line)}</li>" for line in evidence.lines())
    status = escape(str(evidence.block()["signed_digest"]["status"]))
    return (
        f'<section id="evidence" data-signed-digest="{status}"><h2>Evidence</h2>'
        f"<ul>{items}</ul></section>"
    )


def _legend() -> str:
    items = "".join(
        f'<span style="background:{colour}"></span>{escape(role)}'
        for role, colour in ROLE_COLOURS.items()
    )
    return f'<p class="legend">{items}</p>'


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return '<p class="empty">none</p>'
    shown = frame[[c for c in frame.columns if not c.endswith("_id")]].copy()  # ids: CSV/JSON
    for column in shown.columns:
        shown[column] = shown[column].map(_cell)
    return str(shown.to_html(index=False, escape=True, border=0))


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _timeline(frame: pd.DataFrame, start: datetime, end: datetime) -> str:
    label_width, chart_width, row_height, top = 330, 760, 18, 24
    lanes = list(dict.fromkeys(zip(frame["email"], frame["role"], strict=True)))
    if not lanes:
        return '<p class="empty">no privileged-role holdings in this period</p>'
    height = top + row_height * len(lanes) + 10
    span = (end - start).total_seconds() or 1.0

    def x(moment: datetime) -> float:
        return label_width + chart_width * (moment - start).total_seconds() / span

    svg = [
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" '
        f'width="{label_width + chart_width + 10}" height="{height}" role="img" '
        'aria-label="privileged-role holdings over time">'
    ]
    for tick in _month_ticks(start, end):
        svg.append(
            f'<line x1="{x(tick):.1f}" y1="{top - 6}" x2="{x(tick):.1f}" y2="{height}" '
            'stroke="#ddd"/>'
        )
        svg.append(f'<text x="{x(tick) + 2:.1f}" y="{top - 10}">{tick:%Y-%m}</text>')
    for index, (email, role) in enumerate(lanes):
        y = top + index * row_height
        label = f"{email} · {role}"
        label = label if len(label) <= 54 else f"{label[:51]}..."
        svg.append(f'<text x="4" y="{y + 13}">{escape(label)}</text>')
        rows = frame[(frame["email"] == email) & (frame["role"] == role)]
        for begin, finish in zip(rows["start"], rows["end"], strict=True):
            left, right = x(begin), x(finish)
            svg.append(
                f'<rect class="holding" x="{left:.1f}" y="{y + 3}" '
                f'width="{max(right - left, 1.5):.1f}" height="{row_height - 6}" '
                f'fill="{ROLE_COLOURS.get(str(role), "#7f8c8d")}"><title>{escape(str(email))}: '
                f"{escape(str(role))} {begin:%Y-%m-%d} to {finish:%Y-%m-%d}</title></rect>"
            )
    svg.append("</svg>")
    return "\n".join(svg)


def _month_ticks(start: datetime, end: datetime) -> list[datetime]:
    ticks = []
    tick = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while tick <= end:
        if tick >= start:
            ticks.append(tick)
        if (tick.year, tick.month) == (datetime.max.year, 12):
            break  # no month follows
        tick = (tick + timedelta(days=32)).replace(day=1)
    step = max(1, len(ticks) // 12)
    return ticks[::step]
