"""The benchmark's result as Markdown: one table per measurement, medians and their ratios.

Each table lists minidocker's rows first, then its peers, with the median, min and max of what was
measured and, for every peer, the ratio *minidocker's median ÷ the peer's median*: above 1
minidocker is slower (or bigger), below 1 faster. Scenario 1 has two minidocker rows (the
chapter-02 stage and the whole runtime), so it gets one ratio column per minidocker row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tests.bench.timing import Series

__all__ = ["Table", "render"]


@dataclass
class Table:
    """One measurement of one scenario: its rows, its unit (``ms``, ``s``, ``MiB``), notes below it."""

    key: str
    title: str
    unit: str
    series: list[Series]
    runs: int
    warmup: int
    notes: list[str] = field(default_factory=list)
    scale: float = 1000.0  # measured value -> shown unit (seconds -> ms by default)
    text: str = ""  # a table of its own (a time series: the soak), shown instead of median rows

    def cell(self, value: float) -> str:
        shown = value * self.scale
        digits = 0 if shown >= 100 else 1 if shown >= 10 else 2
        return f"{shown:.{digits}f}"


def _ratio(ours: Series | None, peer: Series) -> str:
    if ours is None or ours is peer:
        return "—"
    if not (ours.ok and peer.ok) or peer.median == 0:
        return ""
    value = ours.median / peer.median
    return f"**{value:.2f}**" if value >= 10 else f"{value:.2f}"


def render_table(table: Table) -> str:
    if table.text:
        lines = [f"### {table.key}. {table.title}", "", table.text, ""]
        return "\n".join([*lines, *(f"- {note}" for note in table.notes)]).rstrip() + "\n"
    ours = [s for s in table.series if s.contender.ours]
    rows = ours + [s for s in table.series if not s.contender.ours]
    grouped = any(s.contender.group for s in rows)
    if grouped:  # one column: minidocker on the same input (image) ÷ this
        ratio_heads = ["minidocker ÷ this (same image)"]
    elif len(ours) > 1:
        ratio_heads = [f"{s.contender.label} ÷ this" for s in ours]
    else:
        ratio_heads = ["minidocker ÷ this"]
    lines = [f"### {table.key}. {table.title}", "",
             f"{table.runs} measured runs after {table.warmup} warm-up, alternating order; "
             f"values in {table.unit}.", "",
             "| | median | min | max | " + " | ".join(ratio_heads) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(ratio_heads)]
    for s in rows:
        name = f"**{s.contender.label}**" if s.contender.ours else s.contender.label
        if s.ok:
            cells = [table.cell(s.median), table.cell(min(s.values)), table.cell(max(s.values))]
            if grouped:
                ratios = [_ratio(next((o for o in ours if o.contender.group == s.contender.group), None), s)]
            else:
                ratios = [_ratio(o, s) for o in ours]
        else:
            reason = (s.failure or "no value").replace("|", "\\|")
            prefix = "" if reason.startswith(("not measured", "failed")) else "not measured: "
            cells, ratios = [f"{prefix}{reason}", "", ""], ["" for _ in ratio_heads]
        lines.append(f"| {name} | " + " | ".join(cells + ratios) + " |")
    lines.append("")
    for note in table.notes:
        lines.append(f"- {note}")
    commands = [s.contender for s in rows if s.contender.shown]
    if commands:
        lines += ["", "Commands (ROOTFS, BUNDLE, REGISTRY, PATH stand for the run's private places):", ""]
        lines += [f"- {c.label}: `{c.shown}`" for c in commands]
    return "\n".join(lines).rstrip() + "\n"


def render(tables: list[Table], machine: str, versions: dict[str, str], load: tuple[str, str],
           seconds: float, command: str) -> str:
    """The whole result file: when, where, with what, how, then every table."""
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `{command}` "
        f"({seconds / 60:.0f} min).",
        "",
        f"- machine: {machine}",
        f"- load average (1 min) at the start: {load[0]}, at the end: {load[1]} (a shared machine: "
        "compare the ratios, not the absolute times)",
        "- ratio: minidocker's median ÷ the peer's; above 1 minidocker is slower or bigger",
        "",
        "| program | version |",
        "|---|---|",
        *(f"| {name} | {text} |" for name, text in versions.items()),
        "",
    ]
    return "\n".join(lines) + "\n" + "\n".join(render_table(t) for t in tables)
