"""Causal check: remove or add a compassion direction in the residual stream, then re-score.

Probes show where compassion is *readable*; this shows whether the model *uses* it. Forward
hooks edit the residual stream at chosen layers (layer 0 = embedding output, layer l = output of
decoder block l-1, the same indexing as extraction) and the behavioural compassion score is
measured with and without the edit. In the pipeline: ablating the mid-trained stage's direction
at the localised layers of the mid-trained model should lower the score; adding it into the
post-trained model should raise it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from valuetrace.activations.extract import check_layers
from valuetrace.analysis.behaviour import Score, bootstrap_mean, continuation_logprob

from valuetrace.errors import DataError
from valuetrace.models import decoder_layers

Mode = Literal["ablate", "add"]
DirectionLike = Float[np.ndarray, " d"] | Float[torch.Tensor, " d"]


def residual_modules(model: PreTrainedModel) -> list[torch.nn.Module]:
    """The modules whose outputs are the residual-stream layers: index l is layer l."""
    return [model.get_input_embeddings(), *decoder_layers(model)]


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
    before any other hook on the same modules and are removed on exit, also on exceptions.
    """
    units, steps = _checked(model, directions, mode, scale)
    modules = residual_modules(model)

    def make_hook(layer: int) -> Callable[[torch.nn.Module, object, object], object]:
        def edit(hidden: torch.Tensor) -> torch.Tensor:
            u = units[layer].to(device=hidden.device, dtype=hidden.dtype)
            if mode == "ablate":
                return hidden - (hidden @ u).unsqueeze(-1) * u
            return hidden + (alpha * steps[layer]) * u

        def hook(_module: torch.nn.Module, _inputs: object, output: object) -> object:
            if isinstance(output, tuple):
                return (edit(output[0]), *output[1:])
            return edit(output)

        return hook

    handles = [
        modules[layer].register_forward_hook(make_hook(layer), prepend=True) for layer in units
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True)
class CausalResult:
    """Compassion score with and without an intervention, and the paired change over items."""

    mode: Mode
    layers: list[int]
    alpha: float
    scale: dict[int, float] | None  # "add" step size per layer; None for "ablate"
    baseline: Score  # share of items preferring the compassionate continuation, no edit
    intervened: Score  # the same share with the edit
    change: Score  # intervened - baseline, paired bootstrap over items
    margin_change: Score  # mean change of the log-prob margin (compassionate - dismissive)
    preference_base: list[float]  # per-item margin without the edit
    preference_intervened: list[float]  # per-item margin with the edit

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field (layer keys of `scale` become strings in JSON)."""
        return asdict(self)


def causal_effect(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    eval_prompts: Sequence[str],
    compassionate: Sequence[str],
    dismissive: Sequence[str],
    directions: Mapping[int, DirectionLike],
    mode: Mode,
    *,
    alpha: float = 1.0,
    scale: float | Mapping[int, float] = 1.0,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    batch_size: int = 16,
    max_length: int = 256,
    chat: bool = False,
) -> CausalResult:
    """Compassion score of `model` without and with `direction_hooks`, and the paired change.

    `eval_prompts` are raw prompts; `chat` formats them as `continuation_logprob` does.
    """
    n = len(eval_prompts)
    if n == 0 or len(compassionate) != n or len(dismissive) != n:
        raise DataError(
            f"eval_prompts ({n}), compassionate ({len(compassionate)}) and dismissive "
            f"({len(dismissive)}) must be non-empty and of equal length, one entry per item."
        )
    units, steps = _checked(model, directions, mode, scale)

    def margins() -> np.ndarray:
        kwargs = {"batch_size": batch_size, "max_length": max_length, "chat": chat}
        lp_c = continuation_logprob(model, tokenizer, eval_prompts, compassionate, **kwargs)
        lp_d = continuation_logprob(model, tokenizer, eval_prompts, dismissive, **kwargs)
        return lp_c - lp_d

    base = margins()
    with direction_hooks(model, directions, mode, alpha=alpha, scale=scale):
        edited = margins()
    win_base = (base > 0).astype(float)
    win_edited = (edited > 0).astype(float)
    return CausalResult(
        mode=mode,
        layers=sorted(units),
        alpha=float(alpha),
        scale=dict(sorted(steps.items())) if mode == "add" else None,
        baseline=bootstrap_mean(win_base, n_boot, seed, ci),
        intervened=bootstrap_mean(win_edited, n_boot, seed, ci),
        change=bootstrap_mean(win_edited - win_base, n_boot, seed, ci),
        margin_change=bootstrap_mean(edited - base, n_boot, seed, ci),
        preference_base=base.tolist(),
        preference_intervened=edited.tolist(),
    )
