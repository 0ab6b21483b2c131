"""Step `probe`: per-layer probes with CV, controls and CIs for each probe set and stage, and
each probe set's surface baselines (n-gram and length models on the raw text, same folds)."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from valuetrace.activations.examples import load_labelled
from valuetrace.activations.store import read_activations
from valuetrace.config import (
    ProbeSet,
    RunConfig,
    resolve_data_path,
)
from valuetrace.console import progress_bar
from valuetrace.errors import CacheError
from valuetrace.probing import (
    ProbeResults,
    probe_layers,
    save_results,
)
from valuetrace.probing.surface import example_texts, fit_surface, surface_record
from valuetrace.records import save_record
from valuetrace.steps.common import chosen_probe_sets, require_current
from valuetrace.training.lineage import Lineage


def probe(
    config: RunConfig, *, progress: bool = True, probe_sets: Collection[str] | None = None
) -> None:
    """Fit per-layer probes (CV, controls, CIs) for each probe set (or those in `probe_sets`)
    under each stage (one progress bar per probe set, over the stages, when `progress`).

    Raises:
        ConfigError: `probe_sets` names a set the config lacks.
        MissingStepError / CacheError: a stage's activations are missing or stale.
    """
    lineage = Lineage.load(config.paths.lineage)
    for probe_set in chosen_probe_sets(config, probe_sets):
        results: dict[str, ProbeResults] = {}
        ids: list[str] = []
        for stage in progress_bar(lineage.names(), f"probe {probe_set.name}", enabled=progress):
            path = config.paths.activations(probe_set.name, stage)
            cache = read_activations(path)
            found = cache.attrs.get("stage_fingerprint")
            require_current(lineage.get(stage), found, path, "extract")
            ids = cache.ids
            results[stage] = probe_layers(
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
            save_results(results[stage], out, provenance)
        replicas = {s.name for s in config.stages if s.replicate_of}  # seed replicates: noise
        main = {stage: res for stage, res in results.items() if stage not in replicas}
        surface_baselines(config, probe_set, ids, main)


def surface_baselines(
    config: RunConfig,
    probe_set: ProbeSet,
    ids: list[str],
    results: dict[str, ProbeResults],
) -> None:
    """Score the probe set's surface baselines on the probes' folds and save the record.

    Raises:
        CacheError: the probe file's examples are not the cached ones, or stages used
            different folds (the activations were extracted from another version of the file).
    """
    examples = load_labelled(resolve_data_path(probe_set.source, config))
    first = next(iter(results.values()))
    if examples.ids != list(ids) or not np.array_equal(examples.labels, first.labels):
        raise CacheError(
            f"probe set '{probe_set.name}': {probe_set.source} no longer holds the examples its "
            "activations were extracted from; rerun `valuetrace extract --overwrite`."
        )
    for stage, res in results.items():
        if not np.array_equal(res.folds, first.folds):
            raise CacheError(
                f"probe set '{probe_set.name}': stage {stage} was probed on other folds than the "
                "first stage; its cache holds other examples, rerun `valuetrace extract`."
            )
    texts = example_texts(examples.prompts, examples.responses)
    baselines = fit_surface(texts, examples.labels, first.folds, config.probing.surface)
    record = surface_record(
        probe_set.name,
        probe_set.concept,
        baselines,
        examples.labels,
        np.asarray(examples.groups),
        {stage: (res.layers, res.oof_scores) for stage, res in results.items()},
        config.probing,
        config.seed,
    )
    save_record(record, config.paths.surface(probe_set.name))
