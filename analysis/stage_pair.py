"""A stage pair (parent → child) as a type: the key of a compared pair in every findings mapping.

Its text form `parent→child` is written in one place (`__str__`) and read back in one place
(`parse`), so no module builds or splits the arrow itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from valuetrace.errors import DataError

ARROW = "→"


@dataclass(frozen=True)
class StagePair:
    """Two stages compared: `parent` (the earlier stage) and `child` (the stage trained from it,
    or the other arm)."""

    parent: str
    child: str

    def __str__(self) -> str:
        return f"{self.parent}{ARROW}{self.child}"

    @classmethod
    def parse(cls, text: str) -> StagePair:
        """The pair written as `parent→child` (a findings key, `Concentration.pair`).

        Raises:
            DataError: `text` does not hold exactly one arrow between two stage names.
        """
        parts = text.split(ARROW)
        if len(parts) != 2 or not all(parts):
            raise DataError(
                f"{text!r} is not a stage pair; write it as 'parent{ARROW}child' (the key the "
                "findings record uses)."
            )
        return cls(*parts)
