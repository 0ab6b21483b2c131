"""The analysis record: per concept and stage pair, weakening / rotation / drift, concentration.

`Findings` is what `valuetrace analyze` writes (versioned JSON, `valuetrace.records`) and what
the report reads; nothing downstream looks numbers up by string keys. The helpers here turn
per-stage arrays into the record's parts: probe tables, concentration indices with bootstrap
CIs (stated as "domain-concentrated" only when the CI excludes 0), behavioural changes between
stages with paired item bootstraps, and the projection-behaviour correlation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from jaxtyping import Float

from valuetrace import stats
from valuetrace.analysis.behaviour import BehaviourChange, random_direction_band
from valuetrace.analysis.localize import Verdict
from valuetrace.analysis.neutral_floor import NeutralFloor
from valuetrace.analysis.stage_comparison import StageComparison
from valuetrace.analysis.stage_pair import StagePair
from valuetrace.errors import DataError
from valuetrace.probing import ProbeResults
from valuetrace.stats import Interval


def pair_key(a: str, b: str) -> str:
    """The key of a stage pair in every findings mapping (`StagePair`'s text form)."""
    return str(StagePair(a, b))


@dataclass(frozen=True)
class ProbeTable:
    """One stage's per-layer probe metrics (held-out, grouped folds) with interval bounds."""

    accuracy: list[float]
    accuracy_lo: list[float]
    accuracy_hi: list[float]
    auroc: list[float]
    auroc_lo: list[float]
    auroc_hi: list[float]
    control_accuracy: list[float] | None
    selectivity: list[float] | None
    selectivity_lo: list[float] | None
    selectivity_hi: list[float] | None

    def at(self, metric: str, i: int) -> Interval:
        """`metric` ("accuracy", "auroc" or "selectivity") at layer index `i` with its interval.

        Raises:
            DataError: the table holds no such metric (selectivity without control tasks).
        """
        values = getattr(self, metric)
        if values is None:
            raise DataError(f"no {metric} in this probe table; fit the probes with controls.")
        return Interval(
            values[i], getattr(self, f"{metric}_lo")[i], getattr(self, f"{metric}_hi")[i]
        )

    @classmethod
    def from_results(cls, r: ProbeResults) -> ProbeTable:
        """The table of a probe step's results."""

        def col(x: np.ndarray | None, j: int | None = None) -> list[float] | None:
            if x is None:
                return None
            return np.asarray(x if j is None else x[:, j], dtype=np.float64).tolist()

        return cls(
            accuracy=col(r.accuracy) or [],
            accuracy_lo=col(r.accuracy_ci, 0) or [],
            accuracy_hi=col(r.accuracy_ci, 1) or [],
            auroc=col(r.auroc) or [],
            auroc_lo=col(r.auroc_ci, 0) or [],
            auroc_hi=col(r.auroc_ci, 1) or [],
            control_accuracy=col(r.control_accuracy),
            selectivity=col(r.selectivity),
            selectivity_lo=col(r.selectivity_ci, 0),
            selectivity_hi=col(r.selectivity_ci, 1),
        )


@dataclass(frozen=True)
class ConceptFindings:
    """One probe set across stages: probe tables, transfer and the stage-pair comparisons."""

    name: str
    concept: str
    layers: list[int]
    n_examples: int
    probes: dict[str, ProbeTable]
    transfer_auroc: list[list[list[float]]]  # [train stage, test stage, layer]
    comparisons: dict[str, StageComparison]  # keyed by pair_key


@dataclass(frozen=True)
class Concentration:
    """Relative weakening of one setting minus another, per layer and averaged over layers.

    kind "concept": the primary concept minus a control concept over the same stage pair
    (independent bootstraps: different examples); kind "arm": the primary concept over one arm
    minus another arm from the same parent (paired: the same examples and resampled groups).
    `concentrated` only when the overall interval lies above 0.
    """

    kind: Literal["concept", "arm"]
    label: str
    first: str
    second: str
    pair: str  # kind "concept": the stage pair (pair_key); kind "arm": ""
    per_layer: list[Interval]
    overall: Interval

    @property
    def concentrated(self) -> bool:
        """The overall index's interval excludes 0 on the positive side."""
        return self.overall.lo > 0


@dataclass(frozen=True)
class StageBehaviour:
    """A stage's behavioural scores (as the evaluate step wrote them)."""

    compassion: Interval  # share of items preferring the compassionate continuation
    margin: Interval  # mean per-item log-prob margin, nats/token
    helpfulness_loss: Interval  # mean per-token loss on held-out helpfulness responses


@dataclass(frozen=True)
class Projection:
    """Pearson r between an item's projection gap on the stage's direction and its preference."""

    layer: int
    r: float
    lo: float
    hi: float
    n: int
    null_abs_r: float  # the `ci` quantile of |r| random unit directions reach on the same items


@dataclass(frozen=True)
class Figure:
    """One figure the analysis drew: its name, what it shows (`kind`: a comparison measure,
    "accuracy", "cosine", "behaviour", "umap" …), the probe set it belongs to (None for
    run-wide figures) and its path relative to the run folder."""

    name: str
    kind: str
    concept: str | None
    path: str


def _figures_from_v2(figures: dict[str, str], concepts: Sequence[str]) -> list[dict[str, object]]:
    """Version 2 kept figures as {name: path}, names `<probe set>_<kind>` or a run-wide kind."""
    out: list[dict[str, object]] = []
    for name, path in figures.items():
        concept = next((c for c in concepts if name.startswith(f"{c}_")), None)
        kind = name if concept is None else name[len(concept) + 1 :]
        out.append({"name": name, "kind": kind, "concept": concept, "path": path})
    return out


@dataclass(frozen=True)
class Findings:
    """Everything `valuetrace analyze` found; the report renders it and computes nothing."""

    SCHEMA: ClassVar[str] = "valuetrace.findings"
    # 2: behaviour changes carry their seed-replicate floor; 3: figures are `Figure` records;
    # 4: `neutral_floor` (each pair's verdicts against the neutral arm; older files: none);
    # 5: each comparison's `parent_auroc` and the verdict "not encoded in the parent" (older
    # files: parent_auroc None, every layer judged), a neutral floor's `not_encoded` layers;
    # 6: a neutral floor's `value_specific_verdicts`, `no_floor` and `dose_gap` (older files:
    # empty); the verdict "global drift + rotation"
    VERSION: ClassVar[int] = 6

    stages: list[str]
    replicate_of: dict[str, str]
    primary_dataset: str
    primary_pair: list[str]
    ci: float
    behaviour: dict[str, StageBehaviour]
    behaviour_changes: dict[str, BehaviourChange]
    concepts: dict[str, ConceptFindings]
    concentration: list[Concentration]
    projection: dict[str, Projection]
    figures: list[Figure]
    neutral_floor: list[NeutralFloor] = field(default_factory=list)

    @classmethod
    def upgrade(cls, body: dict[str, Any], version: int) -> dict[str, Any]:
        """The plain data of an older version in this version's layout (see `records`)."""
        if version < 3:
            concepts = sorted(body.get("concepts", {}), key=len, reverse=True)
            body = {**body, "figures": _figures_from_v2(body.get("figures", {}), concepts)}
        return body

    def figures_of(self, concept: str | None, *kinds: str) -> list[Figure]:
        """The figures of `concept` (None: run-wide ones) of the given kinds, in that order."""
        return [
            f for kind in kinds for f in self.figures if f.concept == concept and f.kind == kind
        ]

    @property
    def primary(self) -> StageComparison:
        """The headline comparison: the primary concept over the primary stage pair."""
        return self.concepts[self.primary_dataset].comparisons[pair_key(*self.primary_pair)]


def interval(samples: Float[np.ndarray, " b"], value: float, ci: float) -> Interval:
    """`value` with the percentile interval of its bootstrap `samples`."""
    lo, hi = stats.percentile_ci(np.asarray(samples, dtype=np.float64)[:, None], ci)[0]
    return Interval(float(value), float(lo), float(hi))


def concentration_index(
    kind: Literal["concept", "arm"],
    label: str,
    pair: str,
    first: tuple[str, StageComparison, np.ndarray],
    second: tuple[str, StageComparison, np.ndarray],
    ci: float,
) -> Concentration:
    """Relative weakening of `first` minus `second` per layer and overall (mean over layers).

    Each argument is (name, comparison, bootstrap samples [b, l] of its relative drop). For
    kind "arm" the samples must come from the same resampled groups (pass the same seed); for
    kind "concept" they are independent, and resample i of each is paired arbitrarily. Only
    layers judged in both comparisons count (`Verdict.judged`: the parent encodes the concept
    there); elsewhere a relative drop is a ratio of noise, so the layer's index is NaN and the
    overall mean leaves it out.

    Raises:
        DataError: the two compare different numbers of layers.
    """
    (name_x, cmp_x, boot_x), (name_y, cmp_y, boot_y) = first, second
    if boot_x.shape[1] != boot_y.shape[1]:
        raise DataError(
            f"{name_x} has {boot_x.shape[1]} layers but {name_y} has {boot_y.shape[1]}; extract "
            "every probe set at the same layers to compare them."
        )
    n = min(boot_x.shape[0], boot_y.shape[0])
    judged = [
        Verdict(u).judged and Verdict(v).judged
        for u, v in zip(cmp_x.verdicts, cmp_y.verdicts, strict=True)
    ]
    obs = np.where(judged, np.asarray(cmp_x.relative) - np.asarray(cmp_y.relative), np.nan)
    boot = boot_x[:n] - boot_y[:n]
    per_layer = [
        interval(boot[:, i], obs[i], ci) if judged[i] else Interval(np.nan, np.nan, np.nan)
        for i in range(obs.size)
    ]
    finite = np.isfinite(obs)
    if finite.any():
        with np.errstate(invalid="ignore"):
            overall = interval(boot[:, finite].mean(1), float(obs[finite].mean()), ci)
    else:  # no layer where both are judged (e.g. a parent encodes nothing): no overall index
        overall = Interval(float("nan"), float("nan"), float("nan"))
    return Concentration(kind, label, name_x, name_y, pair, per_layer, overall)


def mark_global_drift(
    primary: StageComparison, control: StageComparison, index: Concentration
) -> StageComparison:
    """Relabel the primary's weakening as global drift at layers where the control concept
    weakened too and the primary's relative weakening is not shown to exceed the control's
    (the concentration interval does not lie above 0: the control moved as much, or more).
    A rotation beside the weakening stands (`Verdict.DRIFT_ROTATION`): the control tests
    only the drop."""
    verdicts = [
        (Verdict.DRIFT_ROTATION if v.rotated else Verdict.DRIFT)
        if v.weakened and control.encoded.drop_found[i] and not index.per_layer[i].lo > 0
        else v
        for i, v in enumerate(primary.verdicts)
    ]
    return dataclasses.replace(primary, verdicts=verdicts)


def check_same_examples(ids: Mapping[str, Sequence[str]], shapes: Mapping[str, tuple]) -> None:
    """Stages can only be compared over the same examples in the same model width.

    Raises:
        DataError: two stages hold different example ids, or activations of other shapes.
    """
    names = list(ids)
    ref = names[0]
    for name in names[1:]:
        if list(ids[name]) != list(ids[ref]):
            raise DataError(
                f"stages '{ref}' and '{name}' were extracted over different examples; rerun "
                "`valuetrace extract --overwrite` so every stage uses the same probe set."
            )
        if shapes[name] != shapes[ref]:
            raise DataError(
                f"stages '{ref}' {shapes[ref]} and '{name}' {shapes[name]} differ in layers or "
                "width [layers, examples, d_model]; compare checkpoints of one architecture, "
                "with the same layer list."
            )


def projection_vs_preference(
    acts_pos: Float[np.ndarray, "l n d"],
    acts_neg: Float[np.ndarray, "l n d"],
    direction: Float[np.ndarray, "l d"],
    preference: Float[np.ndarray, " n"],
    layer_index: int,
    layer: int,
    *,
    n_boot: int,
    seed: int,
    ci: float,
    n_null: int = 1000,
) -> Projection:
    """Pearson r between an item's projection gap on the direction and its log-prob preference.

    The persona-vector style check: does the internal compassion signal of each eval item
    (compassionate minus dismissive continuation, projected) predict the behavioural one?
    Item-bootstrap percentile interval at level `ci` (`stats.pearson_ci`); NaN when the
    direction is undefined.
    Beside it, the |r| that `n_null` random unit directions reach on the same items
    (`random_direction_band`): r is evidence for this direction only above that band.

    Raises:
        DataError: the number of items with activations and with preferences differ.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = direction[layer_index] / np.linalg.norm(direction[layer_index])
    gap = (acts_pos[layer_index] - acts_neg[layer_index]) @ unit
    pref = np.asarray(preference, dtype=np.float64)
    if gap.shape != pref.shape:
        raise DataError(
            f"{gap.shape[0]} eval items have activations but {pref.shape[0]} have preferences; "
            "rerun `valuetrace extract` and `valuetrace evaluate` on the same eval set."
        )
    null = random_direction_band(
        acts_pos[layer_index] - acts_neg[layer_index], pref, n_directions=n_null, seed=seed, ci=ci
    )
    if np.ptp(gap) == 0 or np.ptp(pref) == 0 or not np.isfinite(gap).all():
        nan = float("nan")
        return Projection(layer, nan, nan, nan, int(gap.size), null)
    found = stats.pearson_ci(gap, pref, n_boot=n_boot, seed=seed, ci=ci)
    return Projection(layer, found.value, found.lo, found.hi, int(gap.size), null)


def verdict_bands(comparison: StageComparison) -> list[tuple[int, int, Verdict]]:
    """Runs of consecutive layer numbers with the same verdict: (first layer, last layer,
    verdict). Layers not extracted split a run (with layers [0, 4, 8] each is its own band),
    so a band never names a layer that was not measured."""
    bands: list[tuple[int, int, Verdict]] = []
    for layer, verdict in zip(comparison.layers, comparison.verdicts, strict=True):
        if bands and bands[-1][2] == verdict and layer == bands[-1][1] + 1:
            bands[-1] = (bands[-1][0], layer, verdict)
        else:
            bands.append((layer, layer, verdict))
    return bands
