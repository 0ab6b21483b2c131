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

Which pairs are transplanted: `analysis.transplant_plan`; how the parent's components are
recorded and replayed into the child: `analysis.transplant_patch`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from jaxtyping import Float
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.activations.extract import n_layers
from valuetrace.analysis.behaviour import ScoringSet, mean_score
from valuetrace.analysis.transplant_patch import ParentStream, eval_only, patched_child
from valuetrace.analysis.transplant_plan import PlannedTransplant, SkippedTransplant
from valuetrace.errors import DataError
from valuetrace.records import load_record, save_record
from valuetrace.stats import Interval, bootstrap_means, percentile_ci

log = logging.getLogger(__name__)


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
    eval_rows = eval_only(rows)
    if eval_rows.n_items != len(parent.margins):
        raise DataError(
            f"{eval_rows.n_items} eval items for the child, {len(parent.margins)} for the "
            "parent; record the parent on the same ScoringSet."
        )
    child, _ = eval_rows.score(model, tokenizer)
    patched = []
    for column in range(1 + parent.n_controls):
        with patched_child(model, parent, column):
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
