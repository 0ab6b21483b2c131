"""Causal transplant: give a child checkpoint its parent's component along the parent's
compassion direction at the localised layers, and measure how much of the behaviour change it
takes back.

Cross-model activation patching (Prakash et al. 2024, "Fine-tuning enhances existing
mechanisms: a case study on entity tracking", ICLR 2024: CMAP). The parent (the checkpoint
before training) and the child (after it) run the same token ids. At each localised layer l
(`valuetrace.architecture.residual_hooks`: layer 0 = the first block's input, l = block l-1's
output) and every position t, the child's residual h_C is replaced by h_C + (h_P·u - h_C·u) u,
where u is the parent's unit difference-of-means direction at l and h_P the parent's residual at
the same layer and position: only the child's component along u changes. The eval items are
scored as the behaviour step scores them (`ScoringSet.score`: mean log-prob of the
compassionate continuation minus the dismissive one, nats/token), giving per item m_P, m_C and
m_patched.

Recovery = mean(m_patched - m_C) / mean(m_P - m_C): 1 when the behaviour change runs entirely
through the child's component along u at these layers, 0 when patching it does nothing. Its CI
is a paired item bootstrap of the ratio of means (`stats.bootstrap_means`). The control patches
along random unit directions orthogonal to u (the same norm, seeded) at the same layers: what
patching one direction recovers by chance. When the change m_C - m_P has a CI that covers 0
there is nothing to recover, and no ratio is reported (a neutral arm).

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
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from jaxtyping import Float
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.activations.extract import n_layers
from valuetrace.analysis.behaviour import ScoringSet, mean_score
from valuetrace.analysis.causal import DirectionLike, unit_direction
from valuetrace.analysis.findings import Findings, pair_key
from valuetrace.analysis.localize import StageComparison
from valuetrace.architecture import ResidualFn, residual_hooks
from valuetrace.errors import DataError
from valuetrace.probing.direction import Direction
from valuetrace.records import load_record, save_record
from valuetrace.stats import Interval, bootstrap_means, percentile_ci

log = logging.getLogger(__name__)

PRIMARY, COUNTER, NEUTRAL = "primary pair", "counter-value arm", "neutral arm"


@dataclass(frozen=True)
class PlannedTransplant:
    """One transplant to run: parent → child at `layers`; `roles` says why (primary pair,
    counter-value arm, neutral arm); `layers_found` whether they hold found weakening (else they
    are the pair's largest, not significant, drop: `StageComparison.localised`)."""

    parent: str
    child: str
    roles: list[str]
    layers: list[int]
    layers_found: bool


@dataclass(frozen=True)
class SkippedTransplant:
    """A transplant that was asked for (by role) but not run, and why."""

    child: str
    roles: list[str]
    reason: str


def _localised(cmp: StageComparison) -> tuple[list[int], bool]:
    """The pair's localised layers (model layer numbers) and whether a weakening was found."""
    return [cmp.layers[i] for i in cmp.localised()], any(cmp.encoded.drop_found)


def _arm(findings: Findings, arm: str) -> StageComparison | None:
    """The primary probe set's comparison whose second stage is `arm` (first in config order)."""
    comparisons = findings.concepts[findings.primary_dataset].comparisons.values()
    return next((c for c in comparisons if c.stage_b == arm), None)


def plan_transplants(
    findings: Findings, counter_arm: str | None, neutral_arm: str | None
) -> tuple[list[PlannedTransplant], list[SkippedTransplant]]:
    """Which transplants to run: the primary pair at its localised layers, and (when the run
    names them) the counter-value arm and the neutral arm, each from its parent in
    `analysis.compare`, both at the counter-value arm's localised layers, so the neutral arm
    answers "does a neutral fine-tune change behaviour through the same place?". A pair asked
    for twice at the same layers (the primary pair is often the counter-value arm) runs once
    with both roles. One that cannot run is returned as skipped with its reason.
    """
    planned: list[PlannedTransplant] = []
    skipped: list[SkippedTransplant] = []

    def add(cmp: StageComparison, role: str, layers: list[int], found: bool) -> None:
        for i, plan in enumerate(planned):
            if (plan.parent, plan.child, plan.layers) == (cmp.stage_a, cmp.stage_b, layers):
                planned[i] = dataclasses.replace(plan, roles=[*plan.roles, role])
                return
        planned.append(PlannedTransplant(cmp.stage_a, cmp.stage_b, [role], layers, found))

    concept = findings.concepts[findings.primary_dataset]
    primary = concept.comparisons[pair_key(*findings.primary_pair)]
    layers, found = _localised(primary)
    if layers:
        add(primary, PRIMARY, layers, found)
    else:
        skipped.append(SkippedTransplant(primary.stage_b, [PRIMARY], _no_layer(primary)))
    arms = [(COUNTER, counter_arm), (NEUTRAL, neutral_arm)]
    counter_layers: tuple[list[int], bool] | None = None
    counter_reason = ""
    for role, arm in arms:
        if arm is None:
            continue
        cmp = _arm(findings, arm)
        if cmp is None:
            reason = (
                f"'{arm}' is the second stage of no pair in analysis.compare; add [its parent, "
                f"{arm}] there and rerun `valuetrace analyze`."
            )
            skipped.append(SkippedTransplant(arm, [role], reason))
            continue
        if role == COUNTER:
            counter_layers = _localised(cmp)
            if not counter_layers[0]:
                counter_reason = _no_layer(cmp)
        if counter_layers is None:
            reason = "no counter-value arm was compared (analysis.counter_arm), so no layers."
            skipped.append(SkippedTransplant(arm, [role], reason))
        elif not counter_layers[0]:
            skipped.append(SkippedTransplant(arm, [role], counter_reason))
        else:
            add(cmp, role, *counter_layers)
    return planned, skipped


def _no_layer(cmp: StageComparison) -> str:
    """Why a pair has no layer to patch at."""
    return (
        f"no layer of {cmp.stage_a} → {cmp.stage_b} is localised (its change is undefined at "
        "every layer), so there is nowhere to patch; see that pair's verdicts."
    )


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


def _eval_only(rows: ScoringSet) -> ScoringSet:
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
        margins, _ = _eval_only(rows).score(model, tokenizer)
    return ParentStream(stage, d_model, n_layers(model), basis, margins, ids, components)


@contextlib.contextmanager
def _patched(model: PreTrainedModel, parent: ParentStream, column: int) -> Iterator[None]:
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


@dataclass(frozen=True)
class Recovery:
    """Share of the behaviour change a patch recovers, for the direction and the control, and
    their paired difference (item-bootstrap CIs; the same resamples for all three)."""

    direction: Interval
    control: Interval
    excess: Interval  # direction − control


def recovery(
    parent: Float[np.ndarray, " n"],
    child: Float[np.ndarray, " n"],
    patched: Float[np.ndarray, " n"],
    control: Float[np.ndarray, "k n"],
    *,
    n_boot: int,
    seed: int,
    ci: float,
) -> Recovery:
    """mean(patched - child) / mean(parent - child), likewise for the mean over the control
    directions, and their difference, each with a percentile CI from resampling items jointly.

    Per-item margins in nats/token. A ratio of means, not a mean of per-item ratios (those blow
    up on items that barely changed). A resample whose change is exactly 0 gives no ratio and
    is left out of the interval.
    """
    gained = np.stack([patched - child, np.mean(control, axis=0) - child, parent - child])  # [3, n]
    boot = bootstrap_means(gained, n_boot, seed)  # [b, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = boot[:, :2] / boot[:, 2:]
    ratios[~np.isfinite(ratios)] = np.nan
    point = gained[:2].mean(1) / gained[2].mean()
    samples = np.column_stack([ratios, ratios[:, 0] - ratios[:, 1]])
    bounds = percentile_ci(samples, ci)
    values = [point[0], point[1], point[0] - point[1]]
    out = [
        Interval(float(v), float(lo), float(hi)) for v, (lo, hi) in zip(values, bounds, strict=True)
    ]
    return Recovery(*out)


@dataclass(frozen=True)
class TransplantResult:
    """One parent → child transplant at `layers` (margins in nats/token, paired item CIs).

    `change` = child − parent margin; `patch_effect` = patched − child; `control_effect` the
    same averaged over the random control directions. `recovery` is None when `change`'s CI
    covers 0: there is no behaviour change to recover, and a ratio would mean nothing.
    """

    parent: str
    child: str
    roles: list[str]
    layers: list[int]
    layers_found: bool
    n_items: int
    n_controls: int
    margin_parent: Interval
    margin_child: Interval
    margin_patched: Interval
    change: Interval
    patch_effect: Interval
    control_effect: Interval
    recovery: Recovery | None
    margins_parent: list[float]
    margins_child: list[float]
    margins_patched: list[float]
    margins_control: list[list[float]]  # [control direction][item]

    @property
    def recoverable(self) -> bool:
        """Whether behaviour changed from parent to child (the change's CI excludes 0)."""
        return not self.change.covers_zero()


def transplant(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: ScoringSet,
    parent: ParentStream,
    plan: PlannedTransplant,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> TransplantResult:
    """Score the child (`model`) on the eval items of `rows` as it is, with its component
    along the parent's direction set to the parent's at every recorded layer and position, and
    likewise along each control direction; the recovery when behaviour changed.

    `parent` comes from `record_parent` on the same `rows` and `tokenizer`.

    Raises:
        DataError: the child's hidden width or depth differs from the parent's, it is scored on
            other items, or its forwards do not line up with the parent's.
    """
    width, depth = model.config.hidden_size, n_layers(model)
    if (width, depth) != (parent.d_model, parent.n_layers):
        raise DataError(
            f"'{plan.child}' has hidden width {width} and {depth - 1} blocks, its parent "
            f"'{parent.stage}' {parent.d_model} and {parent.n_layers - 1}: a transplant needs "
            "a child fine-tuned from the parent (the same architecture and size)."
        )
    eval_rows = _eval_only(rows)
    if eval_rows.n_items != len(parent.margins):
        raise DataError(
            f"{eval_rows.n_items} eval items for the child, {len(parent.margins)} for the "
            "parent; record the parent on the same ScoringSet."
        )
    child, _ = eval_rows.score(model, tokenizer)
    patched = []
    for column in range(1 + parent.n_controls):
        with _patched(model, parent, column):
            patched.append(eval_rows.score(model, tokenizer)[0])
    log.info("transplant %s → %s at layers %s scored", parent.stage, plan.child, plan.layers)
    ours, controls = patched[0], np.stack(patched[1:])
    change = mean_score(child - parent.margins, n_boot, seed, ci)
    return TransplantResult(
        parent=parent.stage,
        child=plan.child,
        roles=list(plan.roles),
        layers=sorted(parent.basis),
        layers_found=plan.layers_found,
        n_items=len(child),
        n_controls=parent.n_controls,
        margin_parent=mean_score(parent.margins, n_boot, seed, ci),
        margin_child=mean_score(child, n_boot, seed, ci),
        margin_patched=mean_score(ours, n_boot, seed, ci),
        change=change,
        patch_effect=mean_score(ours - child, n_boot, seed, ci),
        control_effect=mean_score(controls.mean(0) - child, n_boot, seed, ci),
        recovery=None
        if change.covers_zero()
        else recovery(parent.margins, child, ours, controls, n_boot=n_boot, seed=seed, ci=ci),
        margins_parent=parent.margins.tolist(),
        margins_child=child.tolist(),
        margins_patched=ours.tolist(),
        margins_control=controls.tolist(),
    )


@dataclass(frozen=True)
class TransplantRecord:
    """Every transplant of a run (analysis/transplant.json): the parent's direction from probe
    set `dataset`, `n_controls` random directions per layer drawn with `seed`, CIs at `ci` from
    `n_boot` item resamples; `skipped` lists those asked for but not run, with the reason."""

    SCHEMA: ClassVar[str] = "valuetrace.transplant"
    VERSION: ClassVar[int] = 1

    dataset: str
    ci: float
    n_boot: int
    seed: int
    results: list[TransplantResult]
    skipped: list[SkippedTransplant]

    def save(self, path: Path) -> Path:
        """Write the record as versioned JSON."""
        return save_record(self, path)

    @classmethod
    def load(cls, path: Path) -> TransplantRecord:
        """Read a record written by `save` (MissingStepError: run `valuetrace causal`)."""
        return load_record(cls, path, step="causal")
