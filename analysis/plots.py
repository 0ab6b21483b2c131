"""Report figures: per-layer curves, heatmaps, UMAP panels and behaviour bars, as PNG files.

Every figure stays readable in grey-scale: stages differ by line style and marker, not only by
colour; heatmaps use the perceptually uniform 'cividis' map with the numbers written in cells.
Figures are built on `matplotlib.figure.Figure` (Agg canvas), so no pyplot state is touched.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float, Int
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from valuetrace.errors import DataError

DPI = 120
_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P")
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#000000", "#E69F00")  # Okabe-Ito
_CLASS_STYLE = {1: ("o", "#0072B2", "compassionate (1)"), 0: ("x", "#D55E00", "other (0)")}


@dataclass(frozen=True)
class LayerCurve:
    """One stage's per-layer values with an optional confidence band (lo, hi)."""

    mean: Float[np.ndarray, " l"]
    lo: Float[np.ndarray, " l"] | None = None
    hi: Float[np.ndarray, " l"] | None = None


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png")
    return out


def plot_layer_curves(
    curves: Mapping[str, LayerCurve],
    ylabel: str,
    title: str,
    path: str | Path,
    chance: float | None = None,
    layers: Sequence[int] | None = None,
    chance_label: str = "chance",
) -> Path:
    """Plot a metric per layer for several stages (CI bands shaded) to see where they differ.

    `layers` are the model layer numbers (0 = embeddings, l = output of block l-1).
    """
    if not curves:
        raise DataError("curves is empty; pass at least one stage's LayerCurve.")
    n_layers = {np.asarray(c.mean).shape for c in curves.values()}
    if len(n_layers) != 1 or len(next(iter(n_layers))) != 1:
        raise DataError(
            f"every curve's mean must be 1-D with the same number of layers; got shapes "
            f"{ {k: np.asarray(c.mean).shape for k, c in curves.items()} }."
        )
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, curve) in enumerate(curves.items()):
        ls, marker = _LINESTYLES[i % len(_LINESTYLES)], _MARKERS[i % len(_MARKERS)]
        colour = _COLOURS[i % len(_COLOURS)]
        mean = np.asarray(curve.mean, dtype=float)
        x = np.asarray(layers) if layers is not None else np.arange(mean.size)
        if (curve.lo is None) != (curve.hi is None):
            raise DataError(f"curve {name!r} has only one of lo/hi; pass both or neither.")
        if curve.lo is not None and curve.hi is not None:
            lo, hi = np.asarray(curve.lo, dtype=float), np.asarray(curve.hi, dtype=float)
            if lo.shape != mean.shape or hi.shape != mean.shape:
                raise DataError(
                    f"curve {name!r}: lo {lo.shape} / hi {hi.shape} must match mean {mean.shape}."
                )
            ax.fill_between(x, lo, hi, color=colour, alpha=0.18, linewidth=0)
        ax.plot(x, mean, linestyle=ls, marker=marker, color=colour, label=name, markersize=5)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=(0, (1, 3)), linewidth=1.2, label=chance_label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (0 = embeddings, l = output of block l)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return _save(fig, path)


def plot_scores(
    scores: Mapping[str, Sequence[tuple[float, float, float]]],
    stages: Sequence[str],
    title: str,
    path: str | Path,
) -> Path:
    """One bar panel per score (value with its CI as an error bar) across stages."""
    fig = Figure(figsize=(3.6 * len(scores), 3.4), layout="constrained")
    axes = fig.subplots(1, len(scores), squeeze=False)[0]
    x = np.arange(len(stages))
    for ax, (name, rows) in zip(axes, scores.items(), strict=True):
        value, lo, hi = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
        ax.bar(x, value, color="0.75", edgecolor="black", hatch="//")
        ax.errorbar(x, value, yerr=[value - lo, hi - value], fmt="none", ecolor="black", capsize=4)
        ax.set_xticks(x, stages, rotation=20)
        ax.set_ylabel(name)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def plot_heatmap(
    matrix: Float[np.ndarray, "r c"],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    path: str | Path,
    cbar_label: str,
    vmin: float | None = None,
    vmax: float | None = None,
    annotate: bool = True,
) -> Path:
    """Heatmap with numbers in cells (e.g. train x test stage accuracy, stage pair x layer CKA)."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape != (len(row_labels), len(col_labels)):
        raise DataError(
            f"matrix shape {m.shape} must be 2-D and match {len(row_labels)} row labels x "
            f"{len(col_labels)} column labels."
        )
    cmap = colormaps["cividis"]
    fig = Figure(figsize=(1.2 + 0.75 * m.shape[1], 1.4 + 0.5 * m.shape[0]), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    crowded = m.shape[1] > 6 or max(len(str(c)) for c in col_labels) > 6
    ax.set_xticks(
        range(m.shape[1]),
        col_labels,
        rotation=30 if crowded else 0,
        ha="right" if crowded else "center",
    )
    ax.set_yticks(range(m.shape[0]), row_labels)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=cbar_label)
    if annotate:
        norm = image.norm
        for (r, c), value in np.ndenumerate(m):
            red, green, blue = cmap(norm(value))[:3]
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.4  # perceived luminance
            colour = "white" if dark else "black"
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=8, color=colour)
    return _save(fig, path)


def plot_umap(
    acts_by_stage: Mapping[str, Float[np.ndarray, "n d"]],
    labels: Int[np.ndarray, " n"],
    path: str | Path,
    seed: int = 0,
    layer_name: str = "",
) -> Path:
    """One seeded 2-D UMAP panel per stage, classes marked o vs x, to eyeball class separation."""
    y = np.asarray(labels)
    if not acts_by_stage:
        raise DataError("acts_by_stage is empty; pass at least one stage's activations.")
    for name, acts in acts_by_stage.items():
        shape = np.asarray(acts).shape
        if len(shape) != 2 or shape[0] != y.shape[0] or shape[0] < 4:
            raise DataError(
                f"stage {name!r}: activations {shape} must be [n_examples, d_model] with "
                f"n_examples = len(labels) = {y.shape[0]} and at least 4 examples."
            )
    import umap  # slow first import (numba); only paid when a UMAP is drawn

    n_stages = len(acts_by_stage)
    fig = Figure(figsize=(3.6 * n_stages, 3.8), layout="constrained")
    axes = fig.subplots(1, n_stages, squeeze=False)[0]
    for ax, (name, acts) in zip(axes, acts_by_stage.items(), strict=True):
        reducer = umap.UMAP(n_neighbors=min(15, y.size - 1), random_state=seed, n_jobs=1)
        emb = reducer.fit_transform(np.asarray(acts, dtype=np.float32))
        for cls, (marker, colour, text) in _CLASS_STYLE.items():
            pts = emb[y == cls]
            ax.scatter(pts[:, 0], pts[:, 1], marker=marker, color=colour, s=18, label=text)
        ax.set_title(name)
        ax.set_xlabel("UMAP 1 (arb. units)")
        ax.set_ylabel("UMAP 2 (arb. units)")
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle(f"UMAP of {layer_name} activations by stage" if layer_name else "UMAP by stage")
    return _save(fig, path)
