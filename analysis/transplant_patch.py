"""The two halves of a causal transplant's forwards (`analysis.transplant`): recording the
parent's residual components along its unit direction and along random control directions
(`record_parent`), and replaying them into the child (`patched_child`), which gets
h_C + (h_P·u - h_C·u) u at every recorded layer and position.

How the forwards are paired: the parent runs first and its components are recorded per forward
of its decoder body, in call order; the child then runs the identical sequence of forwards (same
rows, tokenizer and batching) and each forward is patched with the recorded one, checked to hold
the same token ids. The scorer's shared-prefix reuse (`analysis.logprob`) stays on: a prefix
forward is patched at its own positions like every other forward, so the keys and values the
rows continue from are the patched child's, and the result equals a whole-row patched forward up
to float rounding.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.activations.extract import n_layers
from valuetrace.analysis.behaviour import ScoringSet
from valuetrace.analysis.causal import DirectionLike, unit_direction
from valuetrace.architecture import ResidualFn, residual_hooks
from valuetrace.errors import DataError
from valuetrace.probing.direction import Direction


def parent_directions(direction: Direction, layers: Sequence[int]) -> dict[int, np.ndarray]:
    """The parent's direction vector at each of `layers` (model layer numbers), from its probes.

    Raises:
        DataError: a layer was not probed, or its direction is undefined there (the reason
            named); probe that layer (`extract.layers`) or patch at another.
    """
    out = {}
    for layer in layers:
        if layer not in direction.layers:
            raise DataError(
                f"layer {layer} has no {direction.kind} direction (probed layers: "
                f"{direction.layers}); add it to extract.layers and rerun extract and probe."
            )
        if layer in direction.undefined:
            raise DataError(
                f"the direction at layer {layer} is undefined ({direction.undefined[layer]}); "
                "patch at a layer where the parent separates the classes."
            )
        out[layer] = direction.vectors[direction.layers.index(layer)]
    return out


@dataclass(frozen=True)
class ParentStream:
    """A parent's scored margins and its residual components along each layer's directions,
    recorded per forward of its decoder body in call order, to be replayed into a child.

    `basis[l]` is `[1 + k, d]` float32: row 0 the parent's unit direction, rows 1.. the k random
    control directions (unit, orthogonal to row 0). `components[f][l]` is `[b, t, 1 + k]`
    (forward f's batch rows and positions, residual-stream units); `ids[f]` its token ids.
    """

    stage: str
    d_model: int
    n_layers: int  # residual layers: blocks + 1
    basis: dict[int, torch.Tensor]
    margins: Float[np.ndarray, " n"]
    ids: list[torch.Tensor | None]
    components: list[dict[int, torch.Tensor]]

    @property
    def n_controls(self) -> int:
        """The number of random control directions per layer."""
        return next(iter(self.basis.values())).shape[0] - 1


def eval_only(rows: ScoringSet) -> ScoringSet:
    """The eval items of `rows` without helpfulness rows (the transplant scores margins only)."""
    return dataclasses.replace(rows, help_prompts=(), help_responses=())


def _basis(unit: torch.Tensor, n_controls: int, rng: np.random.Generator) -> torch.Tensor:
    """`[1 + k, d]`: `unit`, then k seeded random unit vectors orthogonal to it."""
    u = unit.double().numpy()
    draws = rng.normal(size=(n_controls, u.shape[0]))
    draws -= np.outer(draws @ u, u)
    draws /= np.linalg.norm(draws, axis=1, keepdims=True)
    return torch.from_numpy(np.vstack([u, draws])).float()


def _body_ids(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The token ids a decoder body was called with (None when it got embeddings)."""
    ids = kwargs.get("input_ids", args[0] if args else None)
    return None if ids is None else ids.detach().cpu()


@contextlib.contextmanager
def _body_hook(model: PreTrainedModel, fn: Callable[[tuple, dict], None]) -> Iterator[None]:
    """`fn(args, kwargs)` before every forward of the decoder body, removed on exit."""
    handle = model.base_model.register_forward_pre_hook(
        lambda _m, args, kwargs: fn(args, kwargs), with_kwargs=True
    )
    try:
        yield
    finally:
        handle.remove()


def _check_layers(model: PreTrainedModel, layers: Sequence[int], stage: str) -> None:
    """Refuse an empty layer list or a layer the model does not have."""
    total = n_layers(model)
    bad = [layer for layer in layers if not 0 <= layer < total]
    if not layers or bad:
        raise DataError(
            f"transplant layers {list(layers)} of '{stage}' are not residual layers of this "
            f"model: it has {total - 1} blocks, so layers are 0 (embeddings) to {total - 1}. "
            "Patch at layers from the pair's localisation (analysis/findings.json)."
        )


def record_parent(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: ScoringSet,
    directions: Mapping[int, DirectionLike],
    *,
    stage: str,
    n_controls: int,
    seed: int,
) -> ParentStream:
    """Score the parent on the eval items of `rows` and record, at each layer of `directions`
    and every position of every forward, its components along the unit direction and along
    `n_controls` seeded random unit directions orthogonal to it.

    Raises:
        DataError: no layer, a layer the model lacks, a direction of the wrong width or zero,
            or `n_controls` < 1.
    """
    _check_layers(model, list(directions), stage)
    if n_controls < 1:
        raise DataError(f"n_controls is {n_controls}; the control needs at least 1 direction.")
    d_model = model.config.hidden_size
    rng = np.random.default_rng(seed)
    basis = {
        layer: _basis(unit_direction(directions[layer], d_model, f"layer {layer}"), n_controls, rng)
        for layer in sorted(directions)
    }
    ids: list[torch.Tensor | None] = []
    components: list[dict[int, torch.Tensor]] = []

    def start(args: tuple, kwargs: dict) -> None:
        ids.append(_body_ids(args, kwargs))
        components.append({})

    def reader(layer: int) -> ResidualFn:
        def read(hidden: torch.Tensor) -> None:
            v = basis[layer].to(hidden.device)
            components[-1][layer] = (hidden.float() @ v.T).cpu()

        return read

    readers = {layer: reader(layer) for layer in basis}
    with _body_hook(model, start), residual_hooks(model, readers, first=True):
        margins, _ = eval_only(rows).score(model, tokenizer)
    return ParentStream(stage, d_model, n_layers(model), basis, margins, ids, components)


@contextlib.contextmanager
def patched_child(model: PreTrainedModel, parent: ParentStream, column: int) -> Iterator[None]:
    """Inside the block, each forward of the child's decoder body gets, at every recorded layer
    and position, the parent's component along `basis[l][column]` in place of its own."""
    at = [-1]

    def start(args: tuple, kwargs: dict) -> None:
        at[0] += 1
        f = at[0]
        if f >= len(parent.ids) or not _same(_body_ids(args, kwargs), parent.ids[f]):
            raise DataError(
                f"the child's forward {f} does not match the parent's (other token ids or one "
                "forward more); score parent and child on the same ScoringSet with the same "
                "tokenizer, and a child of the parent's architecture."
            )

    def patcher(layer: int) -> ResidualFn:
        def patch(hidden: torch.Tensor) -> torch.Tensor:
            target = parent.components[at[0]][layer][..., column].to(hidden.device)
            if target.shape != hidden.shape[:2]:
                raise DataError(
                    f"the child's forward {at[0]} at layer {layer} has shape "
                    f"{tuple(hidden.shape[:2])}, the parent's {tuple(target.shape)}; run both "
                    "on the same rows and batching."
                )
            v = parent.basis[layer][column].to(hidden.device)
            delta = target - hidden.float() @ v
            return hidden + (delta[..., None] * v).to(hidden.dtype)

        return patch

    with (
        _body_hook(model, start),
        residual_hooks(model, {layer: patcher(layer) for layer in parent.basis}, first=True),
    ):
        yield
    if at[0] + 1 != len(parent.ids):
        raise DataError(
            f"the child ran {at[0] + 1} forwards, the parent {len(parent.ids)}; score both on "
            "the same ScoringSet."
        )


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Both None (forwards on embeddings), or the same token ids."""
    if a is None or b is None:
        return a is b
    return a.shape == b.shape and torch.equal(a, b)
