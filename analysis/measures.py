"""The comparison measures between two stages, one spec each.

A `Measure` names which two separations (Cohen's d along cross-fitted directions, see
`Separations`) it subtracts; the same spec drives the computation and its replicate floor
(`valuetrace.analysis.localize`), the per-layer figure (`valuetrace.analysis.figures`) and the
CSV rows (`valuetrace.analysis.tables`). Adding a measure: one `Measure` in `MEASURES` and a
`LayerChange` field of that name on `StageComparison`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Float


@dataclass(frozen=True)
class Separations:
    """Cohen's d [b, l] of two stages' examples (x, y) along cross-fitted directions.

    `xx`/`yy`: each stage along its own direction; `xy`: x along y's direction, `yx` y along
    x's; `own` = signed sqrt(xx·yy) and `cross` = signed sqrt(xy·yx), the rotation gap's parts.
    """

    xx: Float[np.ndarray, "b l"]
    yy: Float[np.ndarray, "b l"]
    xy: Float[np.ndarray, "b l"]
    yx: Float[np.ndarray, "b l"]

    @property
    def own(self) -> Float[np.ndarray, "b l"]:
        return _signed_sqrt(self.xx * self.yy)

    @property
    def cross(self) -> Float[np.ndarray, "b l"]:
        return _signed_sqrt(self.xy * self.yx)


def _signed_sqrt(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.sqrt(np.abs(x))


@dataclass(frozen=True)
class Measure:
    """One comparison measure: drop = a − b of two separations, per layer.

    `name` is the `StageComparison` field holding its `LayerChange` and the CSV's
    `<name>_drop` rows; `title` and `unit` label its figure (None: not plotted).
    """

    name: str
    a: Callable[[Separations], np.ndarray]
    b: Callable[[Separations], np.ndarray]
    title: str | None
    unit: str

    def change(self, comparison: Any) -> Any:
        """This measure's `LayerChange` in a `StageComparison`."""
        return getattr(comparison, self.name)


MEASURES: tuple[Measure, ...] = (
    Measure(
        "encoded",
        lambda s: s.xx,
        lambda s: s.yy,
        "weakening",
        "drop in Cohen's d (own cross-fitted direction)",
    ),
    Measure("parent", lambda s: s.xx, lambda s: s.yx, None, "drop in Cohen's d (A's direction)"),
    Measure(
        "rotation",
        lambda s: s.own,
        lambda s: s.cross,
        "rotation gap",
        "own − cross separation (Cohen's d)",
    ),
)
CURVE_MEASURES = tuple(m for m in MEASURES if m.title is not None)
