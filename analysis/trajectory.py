"""Where *and when*: a concept's change along one training run, checkpoint by checkpoint.

A trajectory is a stage's checkpoints along its run (its `save_at` points, or the points a user
listed) ending with the stage itself. Each checkpoint is compared with the stage's parent by
`valuetrace.analysis.localize.compare_stages`, exactly as a configured stage pair is: per layer,
the separation along the checkpoint's own direction (weakening) and along the parent's
(parent direction expressed), the rotation gap, paired group-bootstrap CIs, Holm over layers and
the seed-replicate floor. The floor of a checkpoint is the drift between it and the replicate's
checkpoint at the same step when the replicate saved one (its own run, reseeded), else the
drift between the stage and its replicate at the end of the run. Behaviour: the paired change of
the eval margin from the parent, with the same floors (`valuetrace.analysis.behaviour`).

From these, per verdict (weakening, rotation, strengthening, behaviour), the first step at
which it is significant and beyond the floor, and the layers where it is. Layers where the
parent does not encode the concept (`valuetrace.analysis.verdict.parent_encodes`, from the
parent's probe) are judged at no step, so they never count as a first detection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from jaxtyping import Float, Int
from numpy.typing import ArrayLike

from valuetrace.analysis.behaviour import (
    BehaviourChange,
    BehaviourResult,
    behaviour_change,
    replicate_drift,
)
from valuetrace.analysis.localize import Replicate, compare_stages
from valuetrace.analysis.stage_comparison import StageComparison
from valuetrace.analysis.verdict import CHANGES, Change, Verdict
from valuetrace.errors import DataError
from valuetrace.stats import Interval
from valuetrace.training.lineage import StageRecord

Watched = Change | Literal["behaviour"]  # what a trajectory dates: a change, or behaviour


@dataclass(frozen=True)
class TrajectoryStep:
    """One checkpoint of a trajectory compared with the stage's parent.

    `behaviour` is the paired margin change from the parent (None when behaviour was not
    scored); `floor_from` names the replicate checkpoint(s) whose drift is this step's floor.
    """

    step: int
    stage: str
    comparison: StageComparison
    behaviour: BehaviourChange | None
    floor_from: list[str]


@dataclass(frozen=True)
class FirstStep:
    """The first step at which a verdict is significant and beyond its floor, with the layers
    (model layer numbers) where it is at that step; `step` None = never along the trajectory."""

    verdict: Watched
    step: int | None
    layers: list[int]


@dataclass(frozen=True)
class Trajectory:
    """A stage's trajectory for one probe set: per step, the comparison with its parent."""

    SCHEMA: ClassVar[str] = "trajectory"
    VERSION: ClassVar[int] = 2  # as `TrajectoryRecord`

    stage: str
    parent: str
    dataset: str
    layers: list[int]
    steps: list[TrajectoryStep]
    first: list[FirstStep]

    @property
    def figure_name(self) -> str:
        """The name of its layer x step heatmap (`valuetrace.analysis.figures`)."""
        return f"{self.dataset}_{self.stage}_trajectory"

    def first_step(self, verdict: Watched) -> FirstStep:
        """The `FirstStep` of one verdict ("weakening", "rotation", "strengthening",
        "behaviour")."""
        return next(f for f in self.first if f.verdict == verdict)


@dataclass(frozen=True)
class TrajectoryRecord:
    """Every trajectory of a run (one per trained stage with points and probe set)."""

    SCHEMA: ClassVar[str] = "trajectories"
    # 2: each step's comparison carries its parent's probe AUROC (`parent_auroc`) and the
    # verdict "not encoded in the parent"; version 1 files read with parent_auroc None
    VERSION: ClassVar[int] = 2

    trajectories: list[Trajectory]
    alpha: float
    ci: float


def trajectory_points(records: Sequence[StageRecord]) -> dict[str, list[tuple[int, str]]]:
    """Per stage that has checkpoints along its run: its (step, checkpoint stage) pairs sorted
    by step, ending with the stage itself at its last step (`metrics["steps"]`; a stage
    trained elsewhere without it comes last, one past its last point)."""
    out: dict[str, list[tuple[int, str]]] = {}
    for record in records:
        if record.trajectory_of is not None and record.step is not None:
            out.setdefault(record.trajectory_of, []).append((record.step, record.name))
    by_name = {r.name: r for r in records}
    for stage, points in out.items():
        points.sort()
        final = by_name.get(stage)
        if final is not None:
            last = final.metrics.get("steps")
            points.append((int(last) if last else points[-1][0] + 1, stage))
    return out


def layers_showing(point: TrajectoryStep, layers: Sequence[int], change: Change) -> list[int]:
    """The model layer numbers (`layers`, in the comparison's order) where `point`'s verdict
    holds `change` ("weakening", "rotation" or "strengthening"), significant and beyond its
    replicate floor (never a layer the parent does not encode: no change is judged there)."""
    return [
        layer
        for layer, v in zip(layers, point.comparison.verdicts, strict=True)
        if Verdict(v).shows(change)
    ]


def _first(steps: Sequence[TrajectoryStep], layers: Sequence[int], verdict: Watched) -> FirstStep:
    for point in steps:
        if verdict == "behaviour":
            if point.behaviour is not None and point.behaviour.margin_moved():
                return FirstStep(verdict, point.step, [])
            continue
        hit = layers_showing(point, layers, verdict)
        if hit:
            return FirstStep(verdict, point.step, hit)
    return FirstStep(verdict, None, [])


def analyse_trajectory(
    stage: str,
    parent: str,
    points: Sequence[tuple[int, str]],
    acts: Mapping[str, Float[np.ndarray, "l n d"]],
    labels: Int[np.ndarray, " n"],
    groups: ArrayLike,
    folds: Int[np.ndarray, " n"],
    *,
    dataset: str = "compassion",
    layers: Sequence[int] | None = None,
    replicate_points: Mapping[int, Sequence[str]] | None = None,
    final_replicates: Sequence[str] = (),
    behaviour: Mapping[str, BehaviourResult] | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    ci: float = 0.95,
    seed: int = 0,
    parent_auroc: Sequence[Interval] | None = None,
) -> Trajectory:
    """Compare each checkpoint of `stage`'s trajectory with `parent`, and find the first step of
    each verdict.

    points: (step, checkpoint stage name) pairs in step order, the last usually the stage;
    acts: activations [n_layers, n_examples, d_model] of the same examples per stage name
    (the parent, every point and every replicate named); replicate_points: per step, the
    replicate checkpoints saved at that step (their drift from the point is the floor);
    final_replicates: the stage's seed replicates, the floor of a step that has none of its own
    (the end of the run's drift). behaviour: per stage name, its scored behaviour.
    parent_auroc: the parent's probe's held-out AUROC per layer with its interval
    (`valuetrace.analysis.verdict.held_out_auroc`): layers where the parent does not encode the
    concept are judged at no step (`Verdict.NOT_ENCODED`); None judges every layer.

    Raises:
        DataError: no points, steps out of order, or a named stage has no activations (and what
            `compare_stages` raises).
    """
    if not points:
        raise DataError(f"stage '{stage}' has no trajectory points; add save_at to the stage.")
    steps = [s for s, _ in points]
    if steps != sorted(set(steps)):
        raise DataError(f"trajectory of '{stage}': steps {steps} must be distinct and in order.")
    missing = [n for n in [parent, *(n for _, n in points)] if n not in acts]
    if missing:
        raise DataError(
            f"trajectory of '{stage}': no activations for {missing}; run `valuetrace extract`."
        )
    replicate_points = replicate_points or {}
    out: list[TrajectoryStep] = []
    for step, name in points:
        own = [r for r in replicate_points.get(step, ()) if r in acts]
        floor_pairs = (
            [(name, r) for r in own]
            if own
            else [(stage, r) for r in final_replicates if r in acts and stage in acts]
        )
        comparison, _ = compare_stages(
            acts[parent],
            acts[name],
            labels,
            groups,
            folds,
            stage_a=parent,
            stage_b=name,
            layers=layers,
            replicates=[Replicate(r, acts[o], acts[r]) for o, r in floor_pairs],
            n_boot=n_boot,
            alpha=alpha,
            ci=ci,
            seed=seed,
            parent_auroc=parent_auroc,
        )
        change = None
        if behaviour is not None and parent in behaviour and name in behaviour:
            twins = [behaviour[r] for o, r in floor_pairs if r in behaviour]
            floor = replicate_drift(behaviour[floor_pairs[0][0]], twins) if twins else None
            change = behaviour_change(
                behaviour[parent], behaviour[name], n_boot=n_boot, seed=seed, ci=ci, floor=floor
            )
        out.append(TrajectoryStep(step, name, comparison, change, [r for _, r in floor_pairs]))
    numbers = out[0].comparison.layers
    first = [_first(out, numbers, v) for v in (*CHANGES, "behaviour")]
    return Trajectory(stage, parent, dataset, list(numbers), out, first)


def heatmap_matrix(trajectory: Trajectory) -> Float[np.ndarray, "l s"]:
    """The relative weakening (drop / parent's separation, own cross-fitted direction) per
    layer (rows) and step (columns): the layer x step picture of where and when."""
    return np.array([point.comparison.relative for point in trajectory.steps]).T
