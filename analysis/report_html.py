"""Render report sections as one self-contained HTML page through a Jinja2 template.

The template (`templates/report.html.j2`, shipped as package data) holds the page's layout and
style, so a reader restyles the report without touching Python; this module only turns the
typed `Section`s into plain values for it (figures embedded as base64 PNGs). It knows nothing
about what the sections say.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from valuetrace.analysis.report_model import FigureRef, Section, Table

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("valuetrace.analysis", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _block(block: Table | FigureRef | Section | str) -> dict[str, Any]:
    if isinstance(block, Table):
        return {
            "kind": "table",
            "header": [str(h) for h in block.header],
            "rows": [[str(c) for c in row] for row in block.rows],
            "caption": block.caption,
            "collapsed": block.collapsed,
        }
    if isinstance(block, FigureRef):
        data = base64.b64encode(block.path.read_bytes()).decode()
        return {"kind": "figure", "caption": block.caption, "data": data}
    if isinstance(block, Section):
        return {"kind": "section", "section": _section(block)}
    return {"kind": "text", "text": block}


def _section(section: Section) -> dict[str, Any]:
    return {
        "title": section.title,
        "paragraphs": list(section.paragraphs),
        "emphasis": list(section.emphasis),
        "blocks": [_block(b) for b in section.blocks],
    }


def render_page(title: str, answer: Sequence[str], sections: Sequence[Section], out: Path) -> Path:
    """Write the page: `title`, the highlighted `answer` paragraphs, then each section.

    Raises:
        OSError: a figure file cannot be read or `out` cannot be written.
    """
    page = _ENV.get_template("report.html.j2").render(
        title=title, answer=list(answer), sections=[_section(s) for s in sections]
    )
    out.write_text(page)
    return out
