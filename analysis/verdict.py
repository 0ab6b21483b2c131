"""The verdict of one layer between two stages, as a type rather than a phrase, and the rule
that decides whether a change can be judged at a layer at all (`parent_encodes`)."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Literal

from valuetrace.probing import ProbeResults
from valuetrace.stats import Interval

CHANCE_AUROC = 0.5
Change = Literal["weakening", "rotation", "strengthening"]  # a kind of change a verdict holds
CHANGES: tuple[Change, ...] = ("weakening", "rotation", "strengthening")
ENCODING_RULE = (
    "a change is judged only at layers where the parent encodes the concept: the lower bound of "
    "its probe's held-out AUROC interval lies above chance (0.5)"
)
NOT_ENCODED_WHY = "its probe's held-out AUROC interval does not lie above 0.5"


def parent_encodes(auroc: Interval) -> bool:
    """Whether the parent stage encodes the concept at a layer, so that a change of it from the
    parent to the child (weakening, strengthening, rotation) can be judged there.

    `auroc` is the parent's probe's held-out (out-of-fold, grouped folds) AUROC at that layer
    with its group-bootstrap percentile interval at the configured `probing.ci`
    (`valuetrace.probing.probe_layers`). The rule: its lower bound lies above chance,
    `CHANCE_AUROC` = 0.5 (a one-sided test of AUROC > 0.5 at level (1 − ci) / 2). An undefined
    interval (NaN: a degenerate layer) does not pass.

    Why: a weakening (or rotation) is a change *of* an encoded concept; where the parent's probe
    reads it no better than chance there is nothing to weaken, and a drop in class separation
    there is a change of noise, however significant the paired test of the drop is (paired
    bootstraps make small drops of a near-zero separation look precise). Probing results mean
    something only against a baseline the probe must beat (Hewitt & Liang 2019, *Designing and
    Interpreting Probes with Control Tasks*; Belinkov 2022, *Probing Classifiers: Promises,
    Shortcomings, and Advances*); chance, AUROC 0.5, is the first such baseline.
    """
    return not math.isnan(auroc.lo) and auroc.lo > CHANCE_AUROC


def held_out_auroc(results: ProbeResults) -> list[Interval]:
    """Per probed layer (in `results.layers` order), the probe's held-out AUROC with its
    interval: what `parent_encodes` judges."""
    return [
        Interval(float(v), float(lo), float(hi))
        for v, (lo, hi) in zip(results.auroc, results.auroc_ci, strict=True)
    ]


class Verdict(StrEnum):
    """What happened to a concept at one layer from stage A to stage B.

    The values are the words the report, the CSV and `findings.json` show. `DRIFT` ("global
    drift") is set by the concept-level comparison with a control concept
    (`valuetrace.analysis.findings.mark_global_drift`); `UNDEFINED` where a stage's layer is
    degenerate (the reason is in `StageComparison.undefined`); `NOT_ENCODED` where stage A (the
    parent) does not encode the concept (`parent_encodes`), so no change is judged there.
    `DRIFT_ROTATION`: a "weakening + rotation" whose weakening is global drift; the rotation,
    which the control concept does not test, stands.
    """

    NONE = "no meaningful change"
    WEAKENING = "weakening"
    STRENGTHENING = "strengthening"
    ROTATION = "rotation"
    WEAKENING_ROTATION = "weakening + rotation"
    STRENGTHENING_ROTATION = "strengthening + rotation"
    DRIFT = "global drift"
    UNDEFINED = "undefined"
    NOT_ENCODED = "not encoded in the parent"
    DRIFT_ROTATION = "global drift + rotation"

    @classmethod
    def of(cls, weakened: bool, strengthened: bool, rotated: bool) -> Verdict:
        """The verdict of a layer whose separation dropped / rose / whose direction rotated
        beyond their floors (weakening wins over strengthening; they cannot both hold)."""
        if weakened:
            return cls.WEAKENING_ROTATION if rotated else cls.WEAKENING
        if strengthened:
            return cls.STRENGTHENING_ROTATION if rotated else cls.STRENGTHENING
        return cls.ROTATION if rotated else cls.NONE

    @property
    def weakened(self) -> bool:
        """The separation along the stage's own direction dropped beyond its floor."""
        return self in (Verdict.WEAKENING, Verdict.WEAKENING_ROTATION)

    @property
    def strengthened(self) -> bool:
        """The separation along the stage's own direction rose beyond its floor."""
        return self in (Verdict.STRENGTHENING, Verdict.STRENGTHENING_ROTATION)

    @property
    def rotated(self) -> bool:
        """The direction turned beyond its floor (alone or beside a change of strength)."""
        return self in (
            Verdict.ROTATION,
            Verdict.WEAKENING_ROTATION,
            Verdict.STRENGTHENING_ROTATION,
            Verdict.DRIFT_ROTATION,
        )

    @property
    def judged(self) -> bool:
        """A change could be judged at this layer: it is defined and the parent encodes the
        concept there (not `UNDEFINED`, not `NOT_ENCODED`)."""
        return self not in (Verdict.UNDEFINED, Verdict.NOT_ENCODED)

    @property
    def fired(self) -> bool:
        """Any change was found (not `NONE`, and judged)."""
        return self.judged and self is not Verdict.NONE

    def shows(self, change: Change) -> bool:
        """Whether this verdict holds the change named "weakening", "strengthening" or
        "rotation" (the trajectory's per-change first steps).

        Raises:
            KeyError: another name.
        """
        return {
            "weakening": self.weakened,
            "strengthening": self.strengthened,
            "rotation": self.rotated,
        }[change]
