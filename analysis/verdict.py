"""The verdict of one layer between two stages, as a type rather than a phrase."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """What happened to a concept at one layer from stage A to stage B.

    The values are the words the report, the CSV and `findings.json` show. `DRIFT` ("global
    drift") is set by the concept-level comparison with a control concept
    (`valuetrace.analysis.findings.mark_global_drift`); `UNDEFINED` where a stage's layer is
    degenerate (the reason is in `StageComparison.undefined`).
    """

    NONE = "no meaningful change"
    WEAKENING = "weakening"
    STRENGTHENING = "strengthening"
    ROTATION = "rotation"
    WEAKENING_ROTATION = "weakening + rotation"
    STRENGTHENING_ROTATION = "strengthening + rotation"
    DRIFT = "global drift"
    UNDEFINED = "undefined"

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
