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
        )

    @property
    def fired(self) -> bool:
        """Any change was found (not `NONE`, not `UNDEFINED`)."""
        return self not in (Verdict.NONE, Verdict.UNDEFINED)

    def shows(self, change: str) -> bool:
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
