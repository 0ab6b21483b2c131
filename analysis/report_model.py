"""The report as data: typed sections a renderer turns into a page, and the one place numbers
and intervals are formatted.

A `Section` knows nothing about valuetrace's measures (it holds a title, paragraphs, tables and
figures); `valuetrace.analysis.report_sections` builds them from the findings and
`valuetrace.analysis.report_html` renders them through a Jinja2 template. Add a section by
writing a builder that returns one and listing it in `report_sections.SECTIONS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from valuetrace.stats import Interval


def fmt(x: float | None, digits: int = 3, signed: bool = False) -> str:
    """A number to `digits` decimals ("n/a" when missing or NaN), with its sign if `signed`."""
    if x is None or x != x:
        return "n/a"
    return f"{x:{'+' if signed else ''}.{digits}f}"


def fmt_interval(v: Interval, digits: int = 3, signed: bool = False) -> str:
    """An estimate with its interval: `value [lo, hi]`."""
    return (
        f"{fmt(v.value, digits, signed)} [{fmt(v.lo, digits, signed)}, {fmt(v.hi, digits, signed)}]"
    )


def signed(v: Interval, digits: int = 3) -> str:
    """A change with its interval, signs shown: `+value [lo, hi]`."""
    return fmt_interval(v, digits, signed=True)


def fmt_bounds(v: Interval, digits: int = 3, signed: bool = False) -> str:
    """An interval alone: `[lo, hi]`."""
    return f"[{fmt(v.lo, digits, signed)}, {fmt(v.hi, digits, signed)}]"


def fmt_layers(layers: Sequence[int]) -> str:
    """Layer numbers as runs: `3–6, 11, 24–26` ("none" when empty)."""
    runs: list[list[int]] = []
    for layer in sorted(layers):
        if runs and layer == runs[-1][-1] + 1:
            runs[-1].append(layer)
        else:
            runs.append([layer])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs) or "none"


def layer_word(layers: Sequence[int]) -> str:
    """ "layer" for one layer, "layers" for several (before `fmt_layers`)."""
    return "layer" if len(layers) == 1 else "layers"


def by_verdict(layers: Sequence[int], verdicts: Sequence[str]) -> str:
    """Layers grouped by their verdict, in first-seen order: `rotation at layers 0, 2–3,
    weakening at layer 4`."""
    groups: dict[str, list[int]] = {}
    for layer, verdict in zip(layers, verdicts, strict=True):
        groups.setdefault(str(verdict), []).append(layer)
    return ", ".join(f"{v} at {layer_word(ls)} {fmt_layers(ls)}" for v, ls in groups.items())


@dataclass(frozen=True)
class Table:
    """A table: header cells and rows of cells (rendered as text)."""

    header: Sequence[str]
    rows: Sequence[Sequence[object]]
    caption: str | None = None  # shown above the table
    collapsed: str | None = None  # fold the table away under this label (HTML <details>)


@dataclass(frozen=True)
class FigureRef:
    """A figure file to show, with its caption."""

    path: Path
    caption: str


@dataclass(frozen=True)
class Section:
    """One part of the report, rendered in this order: title, paragraphs, then each block
    (a `Table`, a `FigureRef`, a `Section` nested one level down, or preformatted text)."""

    title: str
    paragraphs: Sequence[str] = ()
    blocks: Sequence[Table | FigureRef | Section | str] = field(default_factory=list)
    emphasis: Sequence[str] = ()  # paragraphs to stress (flags, warnings), after `paragraphs`
