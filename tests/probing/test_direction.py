"""Tests for probing.direction: sign, raw-space mapping, the file format, width checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.probing.synthetic import planted
from valuetrace.errors import ValuetraceError
from valuetrace.probing import Direction, fit_probe


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    acts, labels, _ = planted(80, (4.0, 4.0), d=12)
    return acts, labels


def test_probe_direction_is_w_over_std_normalised_and_points_to_label_1(data) -> None:
    acts, labels = data
    probe = fit_probe(acts, labels)
    direction = Direction.from_probe(probe, {"stage": "base"})
    raw = probe.coef / probe.std
    np.testing.assert_allclose(
        direction.vectors, raw / np.linalg.norm(raw, axis=1)[:, None], rtol=1e-5
    )
    np.testing.assert_allclose(np.linalg.norm(direction.vectors, axis=1), 1.0, rtol=1e-6)
    proj = direction.project(acts)
    assert (proj[:, labels == 1].mean(1) > proj[:, labels == 0].mean(1)).all()
    # ordering of the projection equals the probe's decision ordering
    order = np.argsort(probe.decision(acts)[0])
    assert np.all(np.diff(proj[0][order]) >= -1e-4)


def test_mean_difference_points_to_label_1(data) -> None:
    acts, labels = data
    flipped = Direction.from_mean_difference(acts, 1 - labels)
    direction = Direction.from_mean_difference(acts, labels, layers=[3, 5])
    np.testing.assert_allclose(direction.vectors, -flipped.vectors, atol=1e-6)
    assert direction.kind == "mean_diff" and direction.layers == [3, 5]
    proj = direction.project(acts)
    assert (proj[:, labels == 1].mean(1) > proj[:, labels == 0].mean(1)).all()


@pytest.mark.parametrize(
    ("labels", "match"),
    [(np.r_[np.zeros(80), np.full(80, 2)], r"must be 0/1"), (np.ones(160), r"only class \[1\]")],
    ids=["not-01", "one-class"],
)
def test_mean_difference_needs_0_1_labels_of_both_classes(data, labels, match: str) -> None:
    with pytest.raises(ValuetraceError, match=match):
        Direction.from_mean_difference(data[0], labels.astype(np.int64))


def test_save_load_round_trip(tmp_path: Path, data) -> None:
    acts, labels = data
    direction = Direction.from_mean_difference(acts, labels, [2, 9], {"model": "tiny", "seed": "0"})
    direction.save(tmp_path / "d.safetensors")
    loaded = Direction.load(tmp_path / "d.safetensors", d_model=12)
    np.testing.assert_array_equal(loaded.vectors, direction.vectors)
    assert (loaded.layers, loaded.kind, loaded.provenance) == (
        [2, 9],
        "mean_diff",
        {"model": "tiny", "seed": "0"},
    )


def test_other_width_is_refused_naming_both_widths(tmp_path: Path, data) -> None:
    acts, labels = data
    direction = Direction.from_mean_difference(acts, labels)
    with pytest.raises(ValuetraceError, match="width 16 but this direction has width 12"):
        direction.project(np.zeros((2, 5, 16), dtype=np.float32))
    with pytest.raises(ValuetraceError, match="3 layers but this direction has 2"):
        direction.project(np.zeros((3, 5, 12), dtype=np.float32))
    direction.save(tmp_path / "d.safetensors")
    with pytest.raises(ValuetraceError, match="width 12 but the activations have width 768"):
        Direction.load(tmp_path / "d.safetensors", d_model=768)


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValuetraceError, match="not a readable safetensors file"):
        Direction.load(tmp_path / "junk.safetensors")
    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValuetraceError, match="not a valuetrace direction file"):
        Direction.load(tmp_path / "model.safetensors")


def test_non_unit_rows_are_refused() -> None:
    with pytest.raises(ValuetraceError, match="normalise each row"):
        Direction(vectors=np.ones((1, 3)), layers=[0], kind="probe")


def test_layers_without_a_direction_are_nan_with_the_reason_and_survive_a_save(
    tmp_path: Path, data
) -> None:
    acts, labels = data
    acts = np.concatenate([np.full_like(acts[:1], 0.25), acts])  # layer 0: one row for all
    acts[1, labels == 0] = acts[1, labels == 1]  # layer 1: rows vary, class means coincide
    direction = Direction.from_mean_difference(acts, labels)
    assert "same activation vector" in direction.undefined[0]
    assert "class means coincide" in direction.undefined[1]
    assert np.isnan(direction.vectors[:2]).all() and 2 not in direction.undefined
    proj = direction.project(acts)
    assert np.isnan(proj[:2]).all() and (proj[2, labels == 1].mean() > proj[2, labels == 0].mean())
    direction.save(tmp_path / "d.safetensors")
    loaded = Direction.load(tmp_path / "d.safetensors")
    np.testing.assert_array_equal(loaded.vectors, direction.vectors)
    assert loaded.undefined == direction.undefined
    with pytest.raises(ValuetraceError, match="must be NaN"):
        Direction(np.ones((1, 1)), [0], "probe", undefined={0: "why"})
