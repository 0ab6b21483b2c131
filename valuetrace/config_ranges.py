"""Range-checked config fields: a numeric field declares its allowed range where it is
defined (`checked`), and `check_ranges` enforces it over a config tree, naming the field."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from valuetrace.errors import ConfigError
from valuetrace.records import short_repr

MAX_SEED = 2**32 - 1  # numpy's legacy seeding (used by the HF Trainer) takes 0 .. 2**32 - 1


@dataclass(frozen=True)
class Bounds:
    """The allowed range of a numeric config field; each bound is optional, open or closed."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def allows(self, value: float) -> bool:
        """Whether `value` is finite and inside every given bound."""
        return (
            math.isfinite(value)
            and (self.gt is None or value > self.gt)
            and (self.ge is None or value >= self.ge)
            and (self.lt is None or value < self.lt)
            and (self.le is None or value <= self.le)
        )

    def __str__(self) -> str:
        """The range as text, e.g. `> 0` or `>= 0 and < 1`."""
        ops = ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
        return " and ".join(f"{op} {bound!r}" for op, bound in ops if bound is not None)


def checked(
    default: Any,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> Any:
    """A dataclass field with a default and an allowed range, which `check_ranges` enforces.

    For a list-valued field the range applies to every element; `None` (an unset optional
    field) is always allowed.
    """
    return field(default=default, metadata={"bounds": Bounds(gt=gt, ge=ge, lt=lt, le=le)})


def check_ranges(obj: Any, where: str) -> None:
    """Check every `checked` field of the config dataclass `obj` and of the dataclasses in it.

    `where` is the path of `obj` in the run config (`""` for the whole config, `"probing"` for
    its probing section); a field is named by its path, e.g. `stages[2].learning_rate`.

    Raises:
        ConfigError: a value is not finite or outside its field's range; the field is named.
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        path = f"{where}.{f.name}" if where else f.name
        bounds: Bounds | None = f.metadata.get("bounds")
        if bounds is not None and value is not None:
            items = enumerate(value) if isinstance(value, list | tuple) else [(None, value)]
            for i, item in items:
                name = path if i is None else f"{path}[{i}]"
                if not bounds.allows(item):
                    default = "leave it out" if f.default is None else f"default {f.default!r}"
                    raise ConfigError(
                        f"{name} is {short_repr(item)}; it must be {bounds}. Change it in the "
                        f"config ({default})."
                    )
        if dataclasses.is_dataclass(value):
            check_ranges(value, path)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    check_ranges(item, f"{path}[{i}]")
