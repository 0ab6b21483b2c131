"""valuetrace: locate where inside a language model a value weakens across training stages.

The Python face (see README, "Python API"): `load_model`, `extract_activations`, `fit_probes`,
`compare_checkpoints`, `plot_degradation`, and the types they return. They are imported on
first use, so `import valuetrace` stays light and the foundation modules below it
(`valuetrace.errors`, `valuetrace.config`, …) can be imported without pulling in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_model": "valuetrace.api",
    "extract_activations": "valuetrace.api",
    "fit_probes": "valuetrace.api",
    "compare_checkpoints": "valuetrace.api",
    "plot_degradation": "valuetrace.api",
    "LabelledExamples": "valuetrace.activations.examples",
    "load_examples": "valuetrace.activations.examples",
    "Activations": "valuetrace.activations.store",
    "ProbeResults": "valuetrace.probing.probe",
    "Direction": "valuetrace.probing.direction",
    "StageComparison": "valuetrace.analysis.localize",
    "ProbingConfig": "valuetrace.config",
    "ValuetraceError": "valuetrace.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    if name not in _API:
        raise AttributeError(f"module 'valuetrace' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value
