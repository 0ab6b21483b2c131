"""Render report sections as plain text (the summary's width), knowing nothing about what they
say: the text twin of `report_html`.

A section renders as its title, its paragraphs and emphasised paragraphs wrapped to the width,
then each block: a table as aligned columns when it fits the width, else one wrapped line per
row (`first cell: header value; header value ...`); a folded (`collapsed`) table as one line
pointing to the HTML report; a figure as its caption; a nested section indented one step.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from valuetrace.analysis.report_model import FigureRef, Section, Table

WIDTH = 100
STEP = "  "  # indentation of one nesting level


def _wrap(text: str, indent: str, width: int) -> list[str]:
    return textwrap.wrap(
        text, width, initial_indent=indent, subsequent_indent=indent + STEP, break_on_hyphens=False
    )


def render_table(table: Table, indent: str = "", width: int = WIDTH) -> list[str]:
    """A table as text lines: aligned columns if they fit `width`, else a line per row."""
    if table.collapsed:
        return _wrap(f"({table.collapsed}: in report.html)", indent, width)
    out = _wrap(table.caption, indent, width) if table.caption else []
    header = [str(h) for h in table.header]
    rows = [[str(c) for c in row] for row in table.rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    if len(indent) + sum(widths) + 2 * (len(widths) - 1) <= width:
        for r in [header, *rows]:
            cells = [c.ljust(w) for c, w in zip(r, widths, strict=True)]
            out.append((indent + "  ".join(cells)).rstrip())
        return out
    for r in rows:
        rest = "; ".join(f"{h} {c}" for h, c in zip(header[1:], r[1:], strict=True))
        out += _wrap(f"{r[0]}: {rest}", indent, width)
    return out


def render_text(section: Section, indent: str = "", width: int = WIDTH) -> list[str]:
    """The section as text lines no wider than `width` (a word longer than it excepted)."""
    out = [f"{indent}{section.title}"]
    inner = indent + STEP
    for para in [*section.paragraphs, *section.emphasis]:
        out += _wrap(para, inner, width)
    for block in section.blocks:
        out += _block(block, inner, width)
    return out


def _block(block: Table | FigureRef | Section | str, indent: str, width: int) -> list[str]:
    if isinstance(block, Table):
        return render_table(block, indent, width)
    if isinstance(block, FigureRef):
        return [f"{indent}[figure: {block.caption}]"]
    if isinstance(block, Section):
        return render_text(block, indent, width)
    return [line for para in block.splitlines() for line in _wrap(para, indent, width)]


def render_sections(sections: Sequence[Section], width: int = WIDTH) -> list[str]:
    """Several sections, each followed by a blank line."""
    return [line for s in sections for line in [*render_text(s, width=width), ""]]
