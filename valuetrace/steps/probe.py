"""Step `probe`: per-layer probes with CV, controls and CIs for each probe set and stage."""

from __future__ import annotations

import numpy as np

from valuetrace.activations.store import read_activations
from valuetrace.config import (
    RunConfig,
)
from valuetrace.console import progress_bar
from valuetrace.probing import (
    probe_layers,
    save_results,
)
from valuetrace.steps.common import require_current
from valuetrace.training.lineage import Lineage


def probe(config: RunConfig, *, progress: bool = True) -> None:
    """Fit per-layer probes (CV, controls, CIs) for each probe set under each stage (one
    progress bar per probe set, over the stages, when `progress`)."""
    lineage = Lineage.load(config.paths.lineage)
    for probe_set in config.probes:
        for stage in progress_bar(lineage.names(), f"probe {probe_set.name}", enabled=progress):
            path = config.paths.activations(probe_set.name, stage)
            cache = read_activations(path)
            found = cache.attrs.get("stage_fingerprint")
            require_current(lineage.get(stage), found, path, "extract")
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
                "stage_fingerprint": str(found or ""),
                "dataset": probe_set.name,
                "model_hash": str(cache.attrs["model_hash"]),
                "dataset_hash": str(cache.attrs["dataset_hash"]),
            }
            out = config.paths.probes(probe_set.name, stage)
            out.parent.mkdir(parents=True, exist_ok=True)
            save_results(results, out, provenance)
