"""The text renderer of report sections: aligned tables that fit, a line per row otherwise,
folded tables pointed to, nested sections indented, nothing wider than the width."""

from __future__ import annotations

from pathlib import Path

from valuetrace.analysis.report_model import FigureRef, Section, Table
from valuetrace.analysis.report_text import render_sections, render_table, render_text


def test_a_table_that_fits_is_aligned_in_columns() -> None:
    lines = render_table(Table(["stage", "score"], [["base", "0.5"], ["sft_help", "0.25"]]))
    assert lines == ["stage     score", "base      0.5", "sft_help  0.25"]


def test_a_wide_table_becomes_one_wrapped_line_per_row() -> None:
    header = ["dimension", *[f"stage_{i}" for i in range(6)]]
    row = ["Moral Consideration", *["0.512 [0.401, 0.623]"] * 6]
    lines = render_table(Table(header, [row], caption="Per dimension:"), indent="  ", width=60)
    assert lines[0] == "  Per dimension:"
    assert lines[1].startswith("  Moral Consideration: stage_0 0.512 [0.401, 0.623]; stage_1")
    assert all(len(line) <= 60 for line in lines) and len(lines) > 3
    assert all(line.startswith("    ") for line in lines[2:])  # continuation indented


def test_a_folded_table_points_to_the_html_report() -> None:
    table = Table(["q", "a"], [["x" * 500, "y"]], collapsed="Example answers")
    assert render_table(table) == ["(Example answers: in report.html)"]


def test_a_section_renders_title_paragraphs_blocks_and_nested_sections() -> None:
    inner = Section("Inner", ["deep"], [Table(["a"], [["1"]])])
    section = Section(
        "Title",
        ["word " * 40],
        [FigureRef(Path("f.png"), "a figure"), "pre\nformatted", inner],
        emphasis=["Careful."],
    )
    lines = render_text(section, width=50)
    assert lines[0] == "Title" and all(len(line) <= 50 for line in lines)
    assert "  Careful." in lines and "  [figure: a figure]" in lines
    assert lines[-4:] == ["  Inner", "    deep", "    a", "    1"]
    assert render_sections([inner, inner]).count("") == 2
