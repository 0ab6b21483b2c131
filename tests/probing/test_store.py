"""Tests for probing.store: round trip, atomic write, and clear errors for foreign files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.activations.hold import held_open
from tests.probing.synthetic import planted
from valuetrace.config import ProbingConfig
from valuetrace.errors import CacheError, MissingStepError, ValuetraceError
from valuetrace.probing import load_results, probe_layers, save_results


@pytest.fixture(scope="module")
def results():
    config = ProbingConfig(n_folds=3, C=[0.1, 1.0], n_bootstrap=50)
    return probe_layers(*planted(30, (0.0, 2.0)), config, seed=4, provenance={"stage": "base"})


def test_round_trip_keeps_every_field(tmp_path: Path, results) -> None:
    path = tmp_path / "probes.h5"
    save_results(results, path, provenance={"dataset": "pairs"})
    loaded = load_results(path)
    for f in dataclasses.fields(results):
        if f.name in ("probe", "probe_direction", "mean_direction", "provenance"):
            continue
        want, got = getattr(results, f.name), getattr(loaded, f.name)
        if isinstance(want, np.ndarray):
            np.testing.assert_array_equal(got, want)
        else:
            assert got == want, f.name
    assert loaded.provenance == {"stage": "base", "dataset": "pairs"}
    for f in dataclasses.fields(results.probe):
        np.testing.assert_array_equal(getattr(loaded.probe, f.name), getattr(results.probe, f.name))
    for name in ("probe_direction", "mean_direction"):
        want, got = getattr(results, name), getattr(loaded, name)
        np.testing.assert_array_equal(got.vectors, want.vectors)
        assert got.kind == want.kind and got.provenance["dataset"] == "pairs"
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_without_control_task(tmp_path: Path) -> None:
    r = probe_layers(*planted(20, (1.0,)), ProbingConfig(n_folds=2, n_bootstrap=20, control=False))
    save_results(r, tmp_path / "p.h5")
    loaded = load_results(tmp_path / "p.h5")
    assert loaded.control_accuracy is None and loaded.selectivity_ci is None


def test_foreign_truncated_and_non_hdf5_files_are_refused(tmp_path: Path, results) -> None:
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValuetraceError, match="not a valuetrace probe-results file"):
        load_results(tmp_path / "other.h5")
    save_results(results, tmp_path / "full.h5")
    data = (tmp_path / "full.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValuetraceError, match=r"truncated|incomplete"):
        load_results(tmp_path / "cut.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(ValuetraceError, match="not a readable HDF5 file"):
        load_results(tmp_path / "text.h5")


def test_a_results_file_being_written_is_locked_not_damaged(tmp_path: Path, results) -> None:
    save_results(results, tmp_path / "p.h5")
    with (
        held_open(tmp_path / "p.h5", "r+"),
        pytest.raises(CacheError, match="is locked: another process") as err,
    ):
        load_results(tmp_path / "p.h5")
    assert "HDF5_USE_FILE_LOCKING" in str(err.value) and "delete" not in str(err.value)
    np.testing.assert_array_equal(load_results(tmp_path / "p.h5").accuracy, results.accuracy)


def test_a_missing_results_file_names_the_step(tmp_path: Path) -> None:
    with pytest.raises(MissingStepError, match="run `valuetrace probe` first"):
        load_results(tmp_path / "none.h5")


def test_a_version_3_file_reads_with_its_surface_margin_nested(tmp_path: Path, results) -> None:
    """Version 3 stored `surface_margin` flat in the config; version 4 nests it under surface."""
    path = tmp_path / "v3.h5"
    save_results(results, path)
    with h5py.File(path, "r+") as f:
        plain = json.loads(f.attrs["config"])
        plain["surface_margin"] = plain.pop("surface")["margin"] + 0.1
        f.attrs["config"] = json.dumps(plain)
        f.attrs["format_version"] = 3
    assert load_results(path).config.surface.margin == pytest.approx(0.15)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 2
    with pytest.raises(CacheError, match="older than this valuetrace reads"):
        load_results(path)
