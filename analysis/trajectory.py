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

With a control concept's trajectory of the same stage (`mark_trajectory_drift`), a weakening the
control matches at that step and layer is global drift, as in the pair view. For a counter-value
arm beside a neutral arm (`NeutralGap`): per saved step, the counter arm's
relative weakening minus the neutral arm's, per layer, with a paired bootstrap interval (both
checkpoints are compared with the same parent over the same examples and resampled groups).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
from valuetrace.analysis.findings import concentration_index, mark_global_drift
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
    VERSION: ClassVar[int] = 3  # as `TrajectoryRecord`

    stage: str
    parent: str
    dataset: str
    layers: list[int]
    steps: list[TrajectoryStep]
    first: list[FirstStep]
    # the control concepts (probe sets) its weakening was checked against: a weakening one of
    # them matched is global drift (`mark_trajectory_drift`); empty = not checked
    drift_controls: list[str] = field(default_factory=list)

    @property
    def figure_name(self) -> str:
        """The name of its layer x step heatmap (`valuetrace.analysis.figures`)."""
        return f"{self.dataset}_{self.stage}_trajectory"

    def first_step(self, verdict: Watched) -> FirstStep:
        """The `FirstStep` of one verdict ("weakening", "rotation", "strengthening",
        "behaviour")."""
        return next(f for f in self.first if f.verdict == verdict)


@dataclass(frozen=True)
class NeutralGap:
    """How far the counter-value arm's weakening exceeds the neutral arm's at one saved step:
    the counter checkpoint's relative weakening (drop / parent's separation) minus the neutral
    checkpoint's, per layer and averaged over the layers judged in both (NaN elsewhere).

    Paired: both checkpoints are compared with the same parent over the same examples, and the
    bootstrap resamples the same groups (the same seed), so `per_layer[i]` is the interval of
    the difference itself; above 0 = the counter arm weakened more than a neutral fine-tune of
    the same dose, beyond resampling noise. The neutral floor of the verdicts
    (`valuetrace.analysis.neutral_floor`) compares point estimates; this says how sure.
    """

    dataset: str
    counter: str
    neutral: str
    step: int
    per_layer: list[Interval]
    overall: Interval


@dataclass(frozen=True)
class TrajectoryRecord:
    """Every trajectory of a run (one per trained stage with points and probe set), and the
    counter-value arm's gaps to the neutral arm per step when the run has both arms."""

    SCHEMA: ClassVar[str] = "trajectories"
    # 2: each step's comparison carries its parent's probe AUROC (`parent_auroc`) and the
    # verdict "not encoded in the parent"; version 1 files read with parent_auroc None
    # 3: `neutral_gaps`; version 2 files read with none
    VERSION: ClassVar[int] = 3

    trajectories: list[Trajectory]
    alpha: float
    ci: float
    neutral_gaps: list[NeutralGap] = field(default_factory=list)


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


def drift_layers(point: TrajectoryStep, layers: Sequence[int]) -> list[int]:
    """The model layer numbers where `point`'s weakening was relabelled global drift (a control
    concept matched it: `mark_trajectory_drift`), with or without a rotation beside it."""
    return [
        layer
        for layer, v in zip(layers, point.comparison.verdicts, strict=True)
        if Verdict(v) in (Verdict.DRIFT, Verdict.DRIFT_ROTATION)
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
) -> tuple[Trajectory, dict[int, Float[np.ndarray, "b l"]]]:
    """Compare each checkpoint of `stage`'s trajectory with `parent`, and find the first step of
    each verdict; also returns, per step, the bootstrap samples of the relative weakening
    [n_boot, n_layers] (`compare_stages`), for `neutral_gaps`.

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
    boots: dict[int, np.ndarray] = {}
    for step, name in points:
        own = [r for r in replicate_points.get(step, ()) if r in acts]
        floor_pairs = (
            [(name, r) for r in own]
            if own
            else [(stage, r) for r in final_replicates if r in acts and stage in acts]
        )
        comparison, boots[step] = compare_stages(
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
    return Trajectory(stage, parent, dataset, list(numbers), out, _firsts(out, numbers)), boots


def _firsts(steps: Sequence[TrajectoryStep], layers: Sequence[int]) -> list[FirstStep]:
    """The first step of each watched verdict (`_first`), in the record's order."""
    return [_first(steps, layers, v) for v in (*CHANGES, "behaviour")]


def mark_trajectory_drift(
    primary: Trajectory,
    control: Trajectory,
    primary_boots: Mapping[int, Float[np.ndarray, "b l"]],
    control_boots: Mapping[int, Float[np.ndarray, "b l"]],
    ci: float,
) -> Trajectory:
    """`primary` with each step's weakening relabelled global drift where the control concept's
    trajectory of the same stage weakened too at that step and layer and the primary's relative
    weakening is not shown to exceed the control's: the pair view's rule
    (`valuetrace.analysis.findings.mark_global_drift`, concentration index kind "concept"),
    step by step; the first steps are recomputed and the control is named in
    `drift_controls`.

    Raises:
        DataError: the two trajectories are of different stages or were saved at other steps.
    """
    twins = {p.step: p for p in control.steps}
    if (control.stage, list(twins)) != (primary.stage, [p.step for p in primary.steps]):
        raise DataError(
            f"the control trajectory ({control.stage}, steps {list(twins)}) is not of the "
            f"primary's stage and steps ({primary.stage}, {[p.step for p in primary.steps]})."
        )
    steps = []
    for point in primary.steps:
        twin = twins[point.step]
        index = concentration_index(
            "concept",
            f"{primary.dataset} − {control.dataset} ({point.stage})",
            "",
            (primary.dataset, point.comparison, primary_boots[point.step]),
            (control.dataset, twin.comparison, control_boots[point.step]),
            ci,
        )
        marked = mark_global_drift(point.comparison, twin.comparison, index)
        steps.append(dataclasses.replace(point, comparison=marked))
    return dataclasses.replace(
        primary,
        steps=steps,
        first=_firsts(steps, primary.layers),
        drift_controls=[*primary.drift_controls, control.dataset],
    )


def twin_steps(counter: Trajectory, neutral: Trajectory) -> dict[int, TrajectoryStep]:
    """The neutral arm's step at each of the counter arm's steps, by step.

    Raises:
        DataError: the arms were not saved at the same steps.
    """
    twins = {p.step: p for p in neutral.steps}
    if [p.step for p in counter.steps] != list(twins):
        raise DataError(
            f"the counter arm's steps {[p.step for p in counter.steps]} and the neutral arm's "
            f"{list(twins)} differ; give both arms the same data size, batch and save_at."
        )
    return twins


def neutral_gaps(
    counter: Trajectory,
    neutral: Trajectory,
    counter_boots: Mapping[int, Float[np.ndarray, "b l"]],
    neutral_boots: Mapping[int, Float[np.ndarray, "b l"]],
    ci: float,
) -> list[NeutralGap]:
    """Per step both arms saved, the counter arm's relative weakening minus the neutral arm's
    (`NeutralGap`), from the two trajectories and their bootstrap samples (`analyse_trajectory`
    with the same seed, so the resamples are paired; `concentration_index`, kind "arm").

    Raises:
        DataError: the arms have different parents or probe sets, or were saved at different
            steps.
    """
    if (counter.parent, counter.dataset) != (neutral.parent, neutral.dataset):
        raise DataError(
            f"arms '{counter.stage}' (from {counter.parent}, {counter.dataset}) and "
            f"'{neutral.stage}' (from {neutral.parent}, {neutral.dataset}) do not share a parent "
            "and probe set; train both arms from the same stage."
        )
    twins = twin_steps(counter, neutral)
    gaps = []
    for point in counter.steps:
        index = concentration_index(
            "arm",
            f"{counter.stage} − {neutral.stage} at step {point.step}",
            "",
            (point.stage, point.comparison, counter_boots[point.step]),
            (twins[point.step].stage, twins[point.step].comparison, neutral_boots[point.step]),
            ci,
        )
        gaps.append(
            NeutralGap(
                counter.dataset,
                counter.stage,
                neutral.stage,
                point.step,
                index.per_layer,
                index.overall,
            )
        )
    return gaps


def heatmap_matrix(trajectory: Trajectory) -> Float[np.ndarray, "l s"]:
    """The relative weakening (drop / parent's separation, own cross-fitted direction) per
    layer (rows) and step (columns): the layer x step picture of where and when."""
    return np.array([point.comparison.relative for point in trajectory.steps]).T
