"""Layers with nothing to probe: every example has the same activation vector there.

Why: last-token pooling over responses that all end in the same token gives layer 0 (the
embeddings) one identical row for every example. No probe, direction or metric is defined on
such a layer; it is reported as undefined (NaN, with this reason) while every other layer is
probed as usual, instead of aborting the run or reporting a chance-level number as a measurement.
"""

import json

import numpy as np
from jaxtyping import Float

CONSTANT_REASON = (
    "every example has the same activation vector at this layer (e.g. last-token pooling over "
    "responses that all end in the same token), so nothing separates the classes; pool over "
    "more tokens (mean or response pooling) to probe it"
)


def constant_layers(acts: Float[np.ndarray, "l n d"], layers: list[int]) -> dict[int, str]:
    """Model layer index → reason, for each layer of ``acts`` whose rows are all identical.

    Exact comparison (no tolerance): a layer whose rows differ by rounding alone still varies,
    and its probe reports what it reads.
    """
    return {
        layer: CONSTANT_REASON
        for layer, rows in zip(layers, np.asarray(acts), strict=True)
        if not (rows != rows[0]).any()  # one layer at a time: memory stays one layer's size
    }


def undefined_to_json(undefined: dict[int, str]) -> str:
    """Undefined layers (model layer index → reason) as a JSON object; JSON keys are strings."""
    return json.dumps({str(layer): reason for layer, reason in undefined.items()})


def undefined_from_json(text: str) -> dict[int, str]:
    """Undefined layers back from ``undefined_to_json``."""
    return {int(layer): reason for layer, reason in json.loads(text).items()}
