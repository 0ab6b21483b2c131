"""Example sets: labels and scores optional for extraction, 0/1 labels of both classes to probe."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from valuetrace.activations.examples import load_examples, load_labelled
from valuetrace.errors import DataError


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = [{"id": f"e{i}", "prompt": "Q?", "response": f"answer {i}"} for i in range(4)]


def test_an_unlabelled_set_loads_for_extraction(tmp_path):
    examples = load_examples(write_jsonl(tmp_path / "u.jsonl", ROWS))
    assert examples.labels is None and examples.scores is None
    assert examples.groups == examples.ids  # no pair column: each example is its own group
    with pytest.raises(DataError, match="has no 'label' column"):
        examples.require_labels("a probe")
    with pytest.raises(DataError, match="has no 'label' column"):
        load_labelled(tmp_path / "u.jsonl")


def test_a_scored_set_keeps_its_scores_and_they_enter_the_hash(tmp_path):
    rows = [{**r, "score": 0.25 * i} for i, r in enumerate(ROWS)]
    scored = load_examples(write_jsonl(tmp_path / "s.jsonl", rows))
    np.testing.assert_array_equal(scored.scores, [0.0, 0.25, 0.5, 0.75])
    unscored = load_examples(write_jsonl(tmp_path / "u.jsonl", ROWS))
    assert scored.content_hash() != unscored.content_hash()


def test_csv_labels_and_scores_parse(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id,text,label,score\na,one,1,2.5\nb,two,0,-1\n")
    examples = load_labelled(path)
    np.testing.assert_array_equal(examples.labels, [1, 0])
    np.testing.assert_array_equal(examples.scores, [2.5, -1.0])


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("label", 2, "label 2 is not 0 or 1"),
        ("label", "", "label '' is not 0 or 1"),
        ("score", "high", "score 'high' is not a finite number"),
        ("score", float("nan"), "score nan is not a finite number"),
    ],
)
def test_a_bad_label_or_score_names_the_row(tmp_path, column, value, message):
    rows = [{**r, column: 1} for r in ROWS]
    rows[2][column] = value
    with pytest.raises(DataError, match=f"line 3: {message}"):
        load_examples(write_jsonl(tmp_path / "bad.jsonl", rows))


def test_a_probe_set_needs_both_classes(tmp_path):
    rows = [{**r, "label": 1} for r in ROWS]
    with pytest.raises(DataError, match="both classes"):
        load_labelled(write_jsonl(tmp_path / "one.jsonl", rows))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'{"id": "a", "response": "ok"}\n{"id": "b", "response": "caf\xe9"}\n',
            "line 2 is not UTF-8",
        ),
        (
            b'{"id": "a", "response": "ok"}\n\n{"id": "b", "response": \n',
            "line 3 is not valid JSON",
        ),
        (
            b'{"id": "a", "response": "ok"}\n{"id": "b"}\n',
            r"line 2: the example lacks field\(s\) \['response'\]",
        ),
        (b'{"id": "a", "response": "ok"}\n["b", "ok"]\n', "line 2 is a JSON list, not an object"),
    ],
)
def test_a_bad_line_names_the_file_and_line(tmp_path, content, message):
    """Issue 20: non-UTF-8 bytes, a broken JSON line and a missing field are DataErrors naming
    the file and line (a UnicodeDecodeError, JSONDecodeError or KeyError before)."""
    path = tmp_path / "probe.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*" + message):
        load_examples(path)


def test_a_one_class_probe_set_names_its_file(tmp_path):
    rows = [{**r, "label": 1} for r in ROWS]
    path = write_jsonl(tmp_path / "one.jsonl", rows)
    with pytest.raises(DataError, match=re.escape(f"probe set {path}: labels hold only class")):
        load_labelled(path)
