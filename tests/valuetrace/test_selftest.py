"""`valuetrace selftest`: the JSON it writes, its exit status, and its layer defaults."""

from __future__ import annotations

import json

import pytest

from valuetrace.cli import main
from valuetrace.errors import ValuetraceError
from valuetrace.steps.selftest import default_layers, neutral_texts

pytestmark = pytest.mark.slow


def test_selftest_writes_one_passing_object_per_case_and_layer(tmp_path, capsys):
    out = tmp_path / "selftest.json"
    assert main(["selftest", "--layers", "1", "3", "--json", str(out)]) == 0
    cases = json.loads(out.read_text())
    assert [(c["case"], c["planted_layer"]) for c in cases] == [
        (case, k) for case in ("weakening", "rotation", "drift") for k in (1, 3)
    ]
    for c in cases:
        assert c["model"] == "scratch" and c["passed"] is True
        assert c["found_layer"] == c["planted_layer"]
    assert capsys.readouterr().out.count("PASS") == 6


def test_a_layer_outside_the_model_is_an_error(capsys):
    assert main(["selftest", "--layers", "9"]) == 2
    assert "layers are 0 (embeddings) to 4" in capsys.readouterr().err
    assert main(["selftest", "--seed", "-1"]) == 2
    assert "seed must lie in 0.." in capsys.readouterr().err


def test_defaults():
    assert default_layers(4) == [1, 2] and default_layers(30) == [10, 20]
    assert len(set(neutral_texts(40))) == 40
    with pytest.raises(ValuetraceError, match="10 to"):
        neutral_texts(3)
