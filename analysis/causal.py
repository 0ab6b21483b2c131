"""Causal dose-response: steer along a compassion direction in the residual stream, re-score.

Probes show where compassion is *readable*; this shows whether the model *uses* it. Hooks edit
the residual stream at chosen layers (`valuetrace.architecture.residual_hooks`: layer 0 = the
input of the first decoder block, layer l = output of block l-1, the sites extraction reads).
In the pipeline, at the localised layer of the post-trained stage, alpha x the parent's
direction (scaled by its class gap) is added over a grid of alpha, and separately the direction
is ablated over the localised layers; the
compassion share, the mean log-prob margin and the helpfulness loss are scored at each point,
and the slope of the margin (and share) against alpha is reported with an item-bootstrap CI.
Activation addition: Turner et al. 2023 ("Activation addition"), Rimsky et al. 2024 (CAA);
directional ablation: Arditi et al. 2024.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from jaxtyping import Float
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.activations.extract import check_layers
from valuetrace.analysis.behaviour import ScoringSet, mean_score
from valuetrace.architecture import residual_hooks
from valuetrace.errors import DataError
from valuetrace.records import load_record, save_record
from valuetrace.stats import Interval, bootstrap_means, percentile_ci

Mode = Literal["ablate", "add"]
DirectionLike = Float[np.ndarray, " d"] | Float[torch.Tensor, " d"]


def unit_direction(direction: DirectionLike, d_model: int, where: str) -> Float[torch.Tensor, " d"]:
    """`direction` as a float32 CPU unit vector, checked against the model width."""
    if isinstance(direction, torch.Tensor):
        direction = direction.detach().cpu().double().numpy()
    vec = torch.from_numpy(np.asarray(direction, dtype=np.float64))
    if vec.ndim != 1 or vec.shape[0] != d_model:
        raise DataError(
            f"the direction for {where} has shape {tuple(vec.shape)} but the model's hidden size "
            f"is {d_model}; pass one vector of width {d_model} (a direction fitted on this model)."
        )
    norm = torch.linalg.vector_norm(vec)
    if not torch.isfinite(norm) or norm == 0:
        raise DataError(
            f"the direction for {where} is zero or not finite; it has no orientation to ablate or "
            "add — check the direction fit (e.g. identical class means)."
        )
    return (vec / norm).float()


def _checked(
    model: PreTrainedModel,
    directions: Mapping[int, DirectionLike],
    mode: Mode,
    scale: float | Mapping[int, float],
) -> tuple[dict[int, torch.Tensor], dict[int, float]]:
    """Unit directions and `add` step sizes per layer, after checking mode, layers and widths."""
    if mode not in ("ablate", "add"):
        raise DataError(f"mode must be 'ablate' or 'add', got {mode!r}.")
    if not directions:
        raise DataError("no directions given; pass {layer: direction} for at least one layer.")
    check_layers(model, list(directions))
    d_model = model.config.hidden_size
    units = {
        layer: unit_direction(vec, d_model, f"layer {layer}") for layer, vec in directions.items()
    }
    return units, _scales(scale, list(units))


def _scales(scale: float | Mapping[int, float], layers: Sequence[int]) -> dict[int, float]:
    """One `add` step size per hooked layer, from a scalar or a per-layer mapping."""
    if not isinstance(scale, Mapping):
        return {layer: float(scale) for layer in layers}
    missing = sorted(set(layers) - set(scale))
    if missing:
        raise DataError(
            f"scale has no entry for layer(s) {missing}; give one scale per hooked layer "
            f"({sorted(layers)}) or a single number."
        )
    return {layer: float(scale[layer]) for layer in layers}


@contextlib.contextmanager
def direction_hooks(
    model: PreTrainedModel,
    directions: Mapping[int, DirectionLike],
    mode: Mode,
    alpha: float = 1.0,
    scale: float | Mapping[int, float] = 1.0,
) -> Iterator[None]:
    """Edit the residual stream along unit directions at the given layers while inside the block.

    "ablate" replaces every position's hidden state h by h - (h·u)u; "add" adds
    alpha * scale[layer] * u. `scale` is in residual-stream units along u, the caller's choice:
    the stage's class gap along u (mean projection of class 1 minus class 0 at that layer, so
    alpha = 1 moves a state by one class gap) or the stream's RMS norm there. The hooks run
    before any other hook on the same blocks (so extraction reads the edited stream) and are
    removed on exit, also on exceptions.
    """
    units, steps = _checked(model, directions, mode, scale)

    def editor(layer: int) -> Callable[[torch.Tensor], torch.Tensor]:
        def edit(hidden: torch.Tensor) -> torch.Tensor:
            u = units[layer].to(device=hidden.device, dtype=hidden.dtype)
            if mode == "ablate":
                return hidden - (hidden @ u).unsqueeze(-1) * u
            return hidden + (alpha * steps[layer]) * u

        return edit

    with residual_hooks(model, {layer: editor(layer) for layer in units}, first=True):
        yield


@dataclass(frozen=True)
class DosePoint:
    """Behaviour of the steered model at one strength (or under ablation, `alpha` NaN).

    `margins` are the per-item log-prob margins (nats/token, compassionate minus dismissive);
    `margin_change` is their paired mean change against the unsteered model (alpha = 0).
    """

    alpha: float
    compassion: Interval  # share of items with a positive margin
    margin: Interval  # mean margin, nats/token
    margin_change: Interval  # mean paired change against alpha = 0, nats/token
    helpfulness_loss: Interval  # nats/token
    margins: list[float]


@dataclass(frozen=True)
class CausalRecord:
    """The dose-response of a post-trained stage along its parent's direction (causal.json).

    `scale` is the parent's class gap along its unit direction at `add_layer` (residual-stream
    units): alpha = 1 moves every position by one class gap. The slopes are least-squares fits of
    the mean margin (nats/token per unit alpha) and of the share (per unit alpha) over the grid,
    with percentile item-bootstrap CIs at level `ci` (items resampled jointly across strengths).
    """

    SCHEMA: ClassVar[str] = "valuetrace.causal"
    VERSION: ClassVar[int] = 1

    stage: str
    parent: str
    dataset: str
    add_layer: int
    ablate_layers: list[int]
    scale: float
    ci: float
    n_boot: int
    n_items: int
    n_help_items: int
    points: list[DosePoint]
    ablation: DosePoint
    margin_slope: Interval
    compassion_slope: Interval

    def save(self, path: Path) -> Path:
        """Write the record as versioned JSON."""
        return save_record(self, path)

    @classmethod
    def load(cls, path: Path) -> CausalRecord:
        """Read a record written by `save` (MissingStepError: run `valuetrace causal`)."""
        return load_record(cls, path, step="causal")


def _slopes(alphas: Float[np.ndarray, " a"], values: Float[np.ndarray, "... a"]) -> np.ndarray:
    """Least-squares slope of `values` against `alphas` along the last axis."""
    centred = alphas - alphas.mean()
    return (values - values.mean(-1, keepdims=True)) @ centred / (centred @ centred)


def slope_score(
    alphas: Float[np.ndarray, " a"],
    per_item: Float[np.ndarray, "a n"],
    *,
    n_boot: int,
    seed: int,
    ci: float,
) -> Interval:
    """Slope of the item mean against alpha, with a CI from resampling items jointly."""
    alphas = np.asarray(alphas, dtype=np.float64)
    boot = bootstrap_means(per_item, n_boot, seed)  # [b, a]
    lo, hi = percentile_ci(_slopes(alphas, boot), ci)
    return Interval(float(_slopes(alphas, per_item.mean(-1))), float(lo), float(hi))


def dose_response(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: ScoringSet,
    *,
    direction: DirectionLike,
    add_layer: int,
    ablate_layers: Sequence[int],
    scale: float,
    alphas: Sequence[float],
    labels: tuple[str, str, str],
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> CausalRecord:
    """Interval `model` with alpha x scale x unit(direction) added at `add_layer` for each alpha,
    and with the direction ablated at `ablate_layers`; fit the slopes.

    `labels` names (stage steered, stage whose direction it is, probe set of the direction).
    `rows` are scored with `ScoringSet.score` under each intervention.

    Raises:
        DataError: the grid lacks 0, fewer than 2 eval items, or a bad direction / layer.
    """
    n = rows.n_items
    if n < 2:
        raise DataError(f"{n} eval item(s); a dose-response needs at least 2 items.")
    grid = sorted(float(a) for a in alphas)
    if 0.0 not in grid or len(set(grid)) < 2:
        raise DataError(f"alphas {list(alphas)} must hold 0 and at least one other strength.")

    runs: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    for alpha in grid:
        with direction_hooks(model, {add_layer: direction}, "add", alpha=alpha, scale=scale):
            runs[alpha] = rows.score(model, tokenizer)
    with direction_hooks(model, dict.fromkeys(ablate_layers, direction), "ablate"):
        ablated = rows.score(model, tokenizer)
    base = runs[0.0][0]

    def point(alpha: float, margins: np.ndarray, help_loss: np.ndarray) -> DosePoint:
        return DosePoint(
            alpha=alpha,
            compassion=mean_score((margins > 0).astype(float), n_boot, seed, ci),
            margin=mean_score(margins, n_boot, seed, ci),
            margin_change=mean_score(margins - base, n_boot, seed, ci),
            helpfulness_loss=mean_score(help_loss, n_boot, seed, ci),
            margins=margins.tolist(),
        )

    per_item = np.stack([runs[a][0] for a in grid])  # [alphas, items]
    stage, parent, dataset = labels
    return CausalRecord(
        stage=stage,
        parent=parent,
        dataset=dataset,
        add_layer=add_layer,
        ablate_layers=sorted(ablate_layers),
        scale=float(scale),
        ci=ci,
        n_boot=n_boot,
        n_items=n,
        n_help_items=len(rows.help_prompts),
        points=[point(a, *runs[a]) for a in grid],
        ablation=point(float("nan"), *ablated),
        margin_slope=slope_score(np.array(grid), per_item, n_boot=n_boot, seed=seed, ci=ci),
        compassion_slope=slope_score(
            np.array(grid), (per_item > 0).astype(float), n_boot=n_boot, seed=seed, ci=ci
        ),
    )


def plot_dose_response(record: CausalRecord, path: Path) -> Path:
    """Compassion share, mean margin and helpfulness loss against alpha, with CIs; the ablated
    model's value drawn as a dashed line with a shaded CI in each panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.4), layout="constrained")
    axes = fig.subplots(1, 3)
    x = np.array([p.alpha for p in record.points])
    panels = (
        ("compassion", "compassion preference (share)"),
        ("margin", "mean log-prob margin (nats/token)"),
        ("helpfulness_loss", "helpfulness loss (nats/token)"),
    )
    pct = round(100 * record.ci)
    for ax, (key, label) in zip(axes, panels, strict=True):
        scores = [getattr(p, key) for p in record.points]
        value = np.array([s.value for s in scores])
        lo, hi = np.array([s.lo for s in scores]), np.array([s.hi for s in scores])
        ax.errorbar(x, value, yerr=[value - lo, hi - value], marker="o", color="#0072B2", capsize=3)
        abl = getattr(record.ablation, key)
        ax.axhline(abl.value, color="#D55E00", linestyle="--", label="direction ablated")
        ax.axhspan(abl.lo, abl.hi, color="#D55E00", alpha=0.12, linewidth=0)
        ax.set_xlabel("alpha (class gaps added)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False)
    fig.suptitle(
        f"{record.stage}: steering along {record.parent}'s direction at layer "
        f"{record.add_layer} ({pct}% CI)"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png")
    return path
