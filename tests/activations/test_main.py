"""`python -m valuetrace.activations`: input checked before any model loads, no labels needed,
and a bad request ends in one error line with exit status 2."""

from __future__ import annotations

import json

import numpy as np

from tests.activations.test_resume_kill import write_probe_set
from valuetrace.activations.__main__ import main
from valuetrace.activations.store import read_activations


def test_a_bad_example_file_fails_before_the_model_is_looked_at(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "response": "x", "score": "high"}) + "\n")
    out = tmp_path / "a.h5"
    # the checkpoint does not exist either: the example file's error must come first
    argv = ["--checkpoint", str(tmp_path / "none"), "--examples", str(bad), "--out", str(out)]
    assert main(argv) == 2
    assert "score 'high' is not a finite number" in capsys.readouterr().err
    assert not out.exists()


def test_an_unlabelled_scored_set_extracts(tmp_path, tiny_checkpoint):
    rows = [
        {"id": f"e{i}", "prompt": "Is the cat resting?", "response": "The cat slept.", "score": i}
        for i in range(3)
    ]
    path = tmp_path / "graded.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "graded.h5"
    assert (
        main(["--checkpoint", str(tiny_checkpoint), "--examples", str(path), "--out", str(out)])
        == 0
    )
    cache = read_activations(out)
    assert not cache.has_labels and cache.acts.shape[1] == 3
    np.testing.assert_array_equal(cache.scores, [0.0, 1.0, 2.0])


def test_a_bad_request_is_one_error_line_and_exit_2(tmp_path, tiny_checkpoint, capsys):
    examples = write_probe_set(tmp_path / "probe.jsonl", 8)
    out = tmp_path / "acts.h5"
    argv = ["--checkpoint", str(tiny_checkpoint), "--examples", str(examples), "--out", str(out)]
    assert main([*argv, "--layers", "9"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines() == [
        "python -m valuetrace.activations: error: layer(s) [9] do not exist (`extract.layers` in "
        "the config, `--layers` on the command line): this model has 2 blocks, so layers are 0 "
        "(embeddings) to 2."
    ]
    assert not out.exists()
    assert main([*argv, "--examples", str(tmp_path / "none.jsonl")]) == 2
    assert capsys.readouterr().err.startswith(
        f"python -m valuetrace.activations: error: probe set {tmp_path / 'none.jsonl'} does not "
        "exist"
    )
