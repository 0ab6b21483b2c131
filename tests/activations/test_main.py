"""`python -m valuetrace.activations`: input checked before any model loads; no labels needed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from valuetrace.activations.__main__ import main
from valuetrace.activations.store import read_activations

from valuetrace.errors import DataError


def test_a_bad_example_file_fails_before_the_model_is_looked_at(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "response": "x", "score": "high"}) + "\n")
    out = tmp_path / "a.h5"
    # the checkpoint does not exist either: the example file's error must come first
    with pytest.raises(DataError, match="score 'high' is not a finite number"):
        main(["--checkpoint", str(tmp_path / "none"), "--examples", str(bad), "--out", str(out)])
    assert not out.exists()


def test_an_unlabelled_scored_set_extracts(tmp_path, tiny_checkpoint):
    rows = [
        {"id": f"e{i}", "prompt": "Is the cat resting?", "response": "The cat slept.", "score": i}
        for i in range(3)
    ]
    path = tmp_path / "graded.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "graded.h5"
    main(["--checkpoint", str(tiny_checkpoint), "--examples", str(path), "--out", str(out)])
    cache = read_activations(out)
    assert not cache.has_labels and cache.acts.shape[1] == 3
    np.testing.assert_array_equal(cache.scores, [0.0, 1.0, 2.0])
