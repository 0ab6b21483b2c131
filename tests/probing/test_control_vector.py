"""A direction exported as a llama.cpp control vector reads back with `gguf` unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from valuetrace.errors import DataError
from valuetrace.probing.control_vector import read_control_vector, write_control_vector
from valuetrace.probing.direction import Direction


def direction() -> Direction:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[3] = np.nan
    return Direction(vectors, [0, 1, 2, 3, 4], "mean_diff", {"stage": "sft"}, {3: "constant"})


def test_round_trip_with_llama_cpp_names_and_metadata(tmp_path: Path) -> None:
    d = direction()
    path = write_control_vector(d, tmp_path / "cv.gguf", model="tiny", scale=2.5)
    rows = read_control_vector(path)
    assert sorted(rows) == [1, 3]  # hidden states 2 and 4 -> blocks 1 and 3
    np.testing.assert_array_equal(rows[1], np.float32(2.5) * d.vectors[2])
    np.testing.assert_array_equal(rows[3], np.float32(2.5) * d.vectors[4])
    reader = gguf.GGUFReader(str(path))
    fields = {name: reader.get_field(name).contents() for name in reader.fields}
    assert fields["general.architecture"] == "controlvector"
    assert fields["controlvector.model_hint"] == "llama"
    assert fields["controlvector.layer_count"] == 2
    assert fields["valuetrace.model"] == "tiny"
    assert fields["valuetrace.scale"] == pytest.approx(2.5)
    assert json.loads(fields["valuetrace.skipped"]) == [0, 1, 3]
    assert fields["valuetrace.provenance.stage"] == "sft"
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in reader.tensors)


def test_nothing_exportable_is_refused(tmp_path: Path) -> None:
    d = direction()
    shallow = Direction(d.vectors[:2], [0, 1], "mean_diff")
    with pytest.raises(DataError, match="no exportable layer"):
        write_control_vector(shallow, tmp_path / "cv.gguf", model="tiny")
    with pytest.raises(DataError, match="scale"):
        write_control_vector(d, tmp_path / "cv.gguf", model="tiny", scale=0.0)
