"""Tests for analysis.plots: every figure is a readable, non-empty PNG."""

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from valuetrace.analysis.plots import (
    LayerCurve,
    plot_heatmap,
    plot_layer_curves,
    plot_umap,
)
from valuetrace.errors import ValuetraceError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert image.std() > 0  # something was drawn


def test_plot_layer_curves(tmp_path: Path) -> None:
    x = np.linspace(0.5, 1.0, 9)
    curves = {
        "base": LayerCurve(x, x - 0.05, x + 0.05),
        "mid": LayerCurve(x[::-1]),
        "sft": LayerCurve(0.7 * x, 0.7 * x - 0.02, 0.7 * x + 0.02),
    }
    out = plot_layer_curves(curves, "AUROC", "Probe AUROC", tmp_path / "sub" / "c.png", 0.5)
    assert out == tmp_path / "sub" / "c.png"
    _assert_png(out)
    with pytest.raises(ValuetraceError, match="lo/hi"):
        plot_layer_curves({"a": LayerCurve(x, lo=x)}, "y", "t", tmp_path / "bad.png")
    with pytest.raises(ValuetraceError, match="same number of layers"):
        plot_layer_curves({"a": LayerCurve(x), "b": LayerCurve(x[:3])}, "y", "t", tmp_path / "b")


def test_plot_heatmap(tmp_path: Path) -> None:
    m = np.array([[0.95, 0.61, 0.58], [0.7, 0.93, 0.66]])
    out = plot_heatmap(
        m, ["mid", "sft"], ["base", "mid", "sft"], "Transfer", tmp_path / "h.png", "accuracy", 0, 1
    )
    _assert_png(out)
    with pytest.raises(ValuetraceError, match="row labels"):
        plot_heatmap(m, ["a"], ["x", "y", "z"], "t", tmp_path / "bad.png", "c")


def test_plot_umap(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], 30)
    acts = {
        "mid": rng.normal(size=(60, 16)) + 3 * labels[:, None],
        "sft": rng.normal(size=(60, 16)),
    }
    out = plot_umap(acts, labels, tmp_path / "u.png", seed=0, layer_name="layer 4")
    _assert_png(out)
