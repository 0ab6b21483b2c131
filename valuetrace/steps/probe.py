"""Step `probe`: per-layer probes with CV, controls and CIs for each probe set and stage."""

from __future__ import annotations

import numpy as np

from valuetrace.activations.store import read_activations
from valuetrace.config import (
    RunConfig,
)
from valuetrace.probing import (
    probe_layers,
    save_results,
)
from valuetrace.training.lineage import Lineage


def probe(config: RunConfig) -> None:
    """Fit per-layer probes (CV, controls, CIs) for each probe set under each stage."""
    lineage = Lineage.load(config.paths.lineage)
    for probe_set in config.probes:
        for stage in lineage.names():
            cache = read_activations(config.paths.activations(probe_set.name, stage))
            results = probe_layers(
                cache.acts,
                cache.labels,
                np.asarray(cache.groups),
                config.probing,
                seed=config.seed,
                layers=cache.layers,
            )
            provenance = {
                "stage": stage,
                "dataset": probe_set.name,
                "model_hash": str(cache.attrs["model_hash"]),
                "dataset_hash": str(cache.attrs["dataset_hash"]),
            }
            out = config.paths.probes(probe_set.name, stage)
            out.parent.mkdir(parents=True, exist_ok=True)
            save_results(results, out, provenance)
