"""Step `trajectory`: each stage with checkpoints along its run (`save_at`, or a user's
`trajectory`) compared with its parent at every step, per probe set; the first step of each
verdict; a layer x step heatmap per trajectory; and, for a known-answer config, the calibration
table of its counter-value and neutral arms and, per probe set and step, the counter arm's
weakening beyond the neutral arm's with a paired interval (`NeutralGap`).

Writes `analysis/trajectories.json` (a `TrajectoryRecord`), `analysis/calibration.json` (when
`analysis.counter_arm` and `analysis.neutral_arm` are set) and `analysis/figures/*_trajectory.png`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import numpy as np
from jaxtyping import Float

from valuetrace.activations.store import read_activations
from valuetrace.analysis.behaviour import BehaviourResult
from valuetrace.analysis.calibration import save_rows
from valuetrace.analysis.figures import trajectory_figures
from valuetrace.analysis.trajectory import (
    NeutralGap,
    Trajectory,
    TrajectoryRecord,
    analyse_trajectory,
    mark_trajectory_drift,
    neutral_gaps,
    trajectory_points,
)
from valuetrace.analysis.verdict import held_out_auroc
from valuetrace.config import RunConfig, trajectory_name
from valuetrace.errors import CacheError, MissingStepError
from valuetrace.probing import load_results
from valuetrace.records import load_record, save_record
from valuetrace.steps.common import chosen_probe_sets, known_answer, require_current
from valuetrace.training.lineage import Lineage

log = logging.getLogger(__name__)


def _trajectory(
    config: RunConfig, lineage: Lineage, dataset: str, stage: str, points: list[tuple[int, str]]
) -> tuple[Trajectory, dict[int, Float[np.ndarray, "b l"]]]:
    """One stage's trajectory over one probe set, from the run folder's caches and scores, with
    each step's bootstrap samples of the relative weakening (`analyse_trajectory`)."""
    paths = config.paths
    parent = lineage.get(stage).parent
    if parent is None:
        raise MissingStepError(f"stage '{stage}' has no parent to compare its trajectory with.")
    replicas = [s.name for s in config.stages if s.replicate_of == stage]
    names = lineage.names()
    replicate_points = {
        step: [trajectory_name(r, step) for r in replicas if trajectory_name(r, step) in names]
        for step, _ in points
    }
    wanted = {parent, *(n for _, n in points), *replicas}
    wanted |= {n for reps in replicate_points.values() for n in reps}
    acts, behaviour = {}, {}
    for name in sorted(wanted & set(names)):
        path = paths.activations(dataset, name)
        if not path.is_file():
            raise MissingStepError(f"no activations at {path}; run `valuetrace extract` first.")
        cache = read_activations(path)
        require_current(lineage.get(name), cache.attrs.get("stage_fingerprint"), path, "extract")
        acts[name] = cache.acts
        if paths.behaviour(name).is_file():
            behaviour[name] = BehaviourResult.load(paths.behaviour(name))
    first = read_activations(paths.activations(dataset, parent))
    parent_probes = load_results(paths.probes(dataset, parent))
    return analyse_trajectory(
        stage,
        parent,
        points,
        acts,
        first.labels,
        np.asarray(first.groups),
        parent_probes.folds,
        dataset=dataset,
        layers=first.layers,
        replicate_points=replicate_points,
        final_replicates=replicas,
        behaviour=behaviour or None,
        n_boot=config.probing.n_bootstrap,
        alpha=config.analysis.alpha,
        ci=config.probing.ci,
        seed=config.seed,
        parent_auroc=held_out_auroc(parent_probes),
    )


Analysed = dict[tuple[str, str], tuple[Trajectory, dict[int, Float[np.ndarray, "b l"]]]]


def _drift_sets(config: RunConfig) -> tuple[str, list[str]]:
    """The primary probe set and its control concepts: the other probe sets that are no source
    of the primary concept (`concept_sources.sources`), in config order."""
    primary = config.probes[0].name
    sources = set(config.concept_sources.sources) if config.concept_sources else set()
    return primary, [p.name for p in config.probes[1:] if p.name not in sources]


def _mark_drift(config: RunConfig, analysed: Analysed) -> None:
    """Relabel, in place, the primary probe set's weakening along each trajectory as global
    drift where a control concept analysed beside it matched it (`mark_trajectory_drift`)."""
    primary, controls = _drift_sets(config)
    for (name, stage), (t, boots) in list(analysed.items()):
        if name != primary:
            continue
        for control in controls:
            if (control, stage) in analysed:
                other, other_boots = analysed[control, stage]
                t = mark_trajectory_drift(t, other, boots, other_boots, config.probing.ci)
        analysed[name, stage] = (t, boots)


def _analyse(
    config: RunConfig, lineage: Lineage, names: Collection[str], *, optional: Collection[str]
) -> Analysed:
    """Every non-replicate trajectory of the probe sets `names`, and of the sets `optional`
    whose caches and probes are there and current (each such set whole or not at all: a set
    `calibrate` did not extract is simply not analysed)."""
    replicas = {s.name for s in config.stages if s.replicate_of}
    points = {
        stage: pts
        for stage, pts in trajectory_points(lineage.records).items()
        if stage not in replicas
    }
    analysed: Analysed = {}
    for name in names:
        for stage, pts in points.items():
            analysed[name, stage] = _trajectory(config, lineage, name, stage, pts)
    for name in optional:
        try:
            found = {
                (name, st): _trajectory(config, lineage, name, st, pts)
                for st, pts in points.items()
            }
        except (MissingStepError, CacheError) as err:
            log.info("trajectory: probe set '%s' not analysed beside the others: %s", name, err)
            continue
        analysed.update(found)
    return analysed


def _gaps(config: RunConfig, analysed: Analysed) -> list[NeutralGap]:
    """The counter arm's gaps to the neutral arm per analysed probe set (`neutral_gaps`); none
    for arms from different parents or saved at other steps (the calibration table names that
    mismatch)."""
    counter, neutral = config.analysis.counter_arm, config.analysis.neutral_arm
    gaps = []
    for name in dict.fromkeys(n for n, _ in analysed):
        if (name, counter) not in analysed or (name, neutral) not in analysed:
            continue
        (c, c_boots), (n, n_boots) = analysed[name, counter], analysed[name, neutral]
        if c.parent == n.parent and [p.step for p in c.steps] == [p.step for p in n.steps]:
            gaps += neutral_gaps(c, n, c_boots, n_boots, config.probing.ci)
    return gaps


def trajectory(config: RunConfig, *, probe_sets: Collection[str] | None = None) -> TrajectoryRecord:
    """Analyse every trajectory in the run folder's lineage (seed replicates' own trajectories
    serve as floors, not as trajectories), relabel the primary probe set's weakening that a
    control concept matched as global drift, and write the record (with the counter arm's gaps
    to the neutral arm), figures and calibration table.

    With `probe_sets`, only those sets' trajectories must be computed; the other sets'
    trajectories of an existing record are kept (their caches were not touched), so `calibrate`
    on a run's folder does not drop what `run` wrote. When the chosen sets hold the primary or
    a control concept, the primary and every control whose caches are there are analysed too,
    so the drift labels never mix a new trajectory with an old one.

    Raises:
        MissingStepError: a chosen set's activations or probes, or the lineage, are missing.
        CacheError: a chosen set's cache was made from an earlier version of its stage.
        ConfigError: `probe_sets` names a set the config lacks.
    """
    paths = config.paths
    lineage = Lineage.load(paths.lineage)
    names = [p.name for p in chosen_probe_sets(config, probe_sets)]
    primary, controls = _drift_sets(config)
    drift = [primary, *controls]
    optional = [n for n in drift if n not in names] if set(drift) & set(names) else []
    analysed = _analyse(config, lineage, names, optional=optional)
    _mark_drift(config, analysed)
    found = [t for t, _ in analysed.values()]
    gaps = _gaps(config, analysed)
    if probe_sets is not None and paths.trajectories.is_file():
        done = {n for n, _ in analysed}
        kept = load_record(TrajectoryRecord, paths.trajectories, step="trajectory")
        found += [t for t in kept.trajectories if t.dataset not in done]
        gaps += [g for g in kept.neutral_gaps if g.dataset not in done]
    record = TrajectoryRecord(found, config.analysis.alpha, config.probing.ci, gaps)
    save_record(record, paths.trajectories)
    trajectory_figures(record, paths)
    known = known_answer(config, record)
    if known is not None:  # the primary probe set's table
        save_rows(known.rows, paths.calibration)
    return record
