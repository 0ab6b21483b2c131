"""Per-layer linear probes on cached activations: where a value is readable, and how well.

Pure arrays in (``[n_layers, n_examples, d_model]`` float32, 0/1 labels with 1 = compassionate,
contrastive group ids), results out; no model code. Settings come from
``valuetrace.config.ProbingConfig`` (the run config's ``probing`` section).
"""

from valuetrace.probing.direction import Direction
from valuetrace.probing.probe import Probe, ProbeResults, fit_probe, probe_layers
from valuetrace.probing.store import load_results, save_results
from valuetrace.probing.transfer import TransferResult, transfer_matrix

__all__ = [
    "Direction",
    "Probe",
    "ProbeResults",
    "TransferResult",
    "fit_probe",
    "load_results",
    "probe_layers",
    "save_results",
    "transfer_matrix",
]
