"""The typed result of comparing one concept between two stages, layer by layer: each
measure's change with its interval and floor (`LayerChange`), the directions' cosine
(`CosineChange`), and the per-layer verdicts (`StageComparison`). `localize.compare_stages`
builds it; the study, trajectories, transplants and the report read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from valuetrace import stats
from valuetrace.analysis.verdict import Verdict
from valuetrace.stats import Interval


@dataclass(frozen=True)
class LayerEstimate:
    """A layer index with its bootstrap distribution: percentile interval and modal layer."""

    layer: int | None  # index into the compared layers, on the observed data; None = none
    lo: int | None  # percentile interval over resamples where a layer qualifies
    hi: int | None
    mode: int | None  # most frequent layer over resamples
    mode_freq: float  # share of all resamples that picked `mode`
    found_freq: float  # share of resamples where any layer qualifies


@dataclass(frozen=True)
class LayerChange:
    """One measure in two settings per layer: the drop a - b, its CI, tests and noise floor.

    `p_drop` / `p_rise` are Holm-adjusted one-sided p-values; `floor` is |drop| of the same
    measure between a stage and its seed replicate (None without replicates). `drop_found` =
    significant drop larger than the floor at a layer where the parent encodes the concept;
    `rise_found` likewise for a rise; `first_drop` and `largest_drop` range over those layers
    only (layer None when the parent encodes it nowhere). NaN = undefined.
    """

    a: list[float]
    b: list[float]
    drop: list[float]
    lo: list[float]
    hi: list[float]
    p_drop: list[float]
    p_rise: list[float]
    floor: list[float] | None
    drop_found: list[bool]
    rise_found: list[bool]
    first_drop: LayerEstimate
    largest_drop: LayerEstimate

    def at(self, i: int) -> stats.Interval:
        """The drop at layer index `i` with its interval."""
        return stats.Interval(self.drop[i], self.lo[i], self.hi[i])


@dataclass(frozen=True)
class CosineChange:
    """Cosine of A's and B's full-data directions per layer, its CI and nulls.

    `random_band`: central band of the cosine of two random unit vectors of this width;
    `shuffled`: the same quantile of |cosine| with directions fitted on within-group shuffled
    labels; `floor`: cosine between a stage and its seed replicate; `below_floor`: the upper CI
    bound lies below that floor (the direction moved more than a reseeded run moves it).
    """

    value: list[float]
    lo: list[float]
    hi: list[float]
    random_band: list[float]
    shuffled: list[float]
    floor: list[float] | None
    below_floor: list[bool]

    def at(self, i: int) -> stats.Interval:
        """The cosine at layer index `i` with its interval."""
        return stats.Interval(self.value[i], self.lo[i], self.hi[i])


@dataclass(frozen=True)
class StageComparison:
    """How one concept changed from stage A to stage B, per compared layer, with a verdict.

    `verdicts[i]` is the `Verdict` of layer index i; `undefined` holds the reason of each
    undefined layer, keyed by its index. `parent_auroc[i]` is stage A's probe's held-out AUROC
    with its interval, which decides whether A encodes the concept there
    (`valuetrace.analysis.verdict.parent_encodes`); None when no probe results were given (then
    every defined layer is judged; findings written before schema 5 read as None).
    """

    stage_a: str
    stage_b: str
    layers: list[int]
    encoded: LayerChange  # (a) separation along each stage's own cross-fitted direction
    parent: LayerChange  # (c) a = A along its own direction, b = B along A's direction
    rotation: LayerChange  # a = own, b = cross geometric-mean separation; drop = the gap
    relative: list[float]  # encoded drop / A's separation (NaN where A does not separate)
    relative_lo: list[float]
    relative_hi: list[float]
    cosine: CosineChange  # (b)
    cka: list[float]  # debiased linear CKA between the stages' activations
    verdicts: list[Verdict]
    undefined: dict[int, str]
    replicates: list[str]  # the seed replicates whose drift is the noise floor
    alpha: float
    ci: float
    n_boot: int
    n_groups: int
    parent_auroc: list[Interval] | None = None

    def localised(self) -> list[int]:
        """Indices of found weakening at least half the largest found drop; else the largest
        drop; empty when stage A encodes the concept at no defined layer."""
        found = [i for i, f in enumerate(self.encoded.drop_found) if f]
        if not found:
            best = self.encoded.largest_drop.layer
            return [] if best is None else [best]
        top = max(self.encoded.drop[i] for i in found)
        return [i for i in found if self.encoded.drop[i] >= top / 2]

    def not_encoded(self) -> list[int]:
        """The layer numbers where stage A does not encode the concept (`Verdict.NOT_ENCODED`):
        no change is judged there."""
        return [
            layer
            for layer, v in zip(self.layers, self.verdicts, strict=True)
            if v is Verdict.NOT_ENCODED
        ]
