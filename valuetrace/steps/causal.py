"""Step `causal`: the dose-response of the post-trained stage along its parent's direction."""

from __future__ import annotations

import numpy as np

from valuetrace.activations.store import read_activations
from valuetrace.analysis.causal import CausalRecord, dose_response, plot_dose_response
from valuetrace.analysis.findings import Findings
from valuetrace.config import RunConfig
from valuetrace.probing import load_results
from valuetrace.records import load_record
from valuetrace.steps.common import (
    behaviour_items,
    helpfulness_items,
    scoring_set,
    stage_model,
    stage_tokenizer,
)
from valuetrace.training.lineage import Lineage


def _localised(config: RunConfig) -> tuple[str, str, str, list[int]]:
    """(probe set, parent stage, post-trained stage, localised layers) of the primary pair.

    Raises:
        MissingStepError: `valuetrace analyze` has not written its findings yet.
    """
    findings = load_record(Findings, config.paths.findings, step="analyze")
    dataset = findings.primary_dataset
    a, b = findings.primary_pair
    layers = findings.concepts[dataset].layers
    return dataset, a, b, [layers[i] for i in findings.primary.localised()]


def causal(config: RunConfig) -> CausalRecord:
    """Steer the post-trained stage along its parent's compassion direction and ablate it.

    At the first localised layer, alpha x the parent's class gap along its unit mean-difference
    direction is added for each `causal.alphas`; the direction is ablated over all localised
    layers. Writes `analysis/causal.json` and the dose-response figure.
    """
    paths = config.paths
    dataset, a, b, layers = _localised(config)
    add_layer = layers[0]
    parent_acts = read_activations(paths.activations(dataset, a), layers=[add_layer])
    results = load_results(paths.probes(dataset, a))
    vector = results.mean_direction.vectors[results.layers.index(add_layer)]
    unit = vector / np.linalg.norm(vector)
    proj = parent_acts.acts[0] @ unit
    gap = float(proj[parent_acts.labels == 1].mean() - proj[parent_acts.labels == 0].mean())
    cap = config.causal.max_items
    items = behaviour_items(config)[:cap]
    help_records = helpfulness_items(config)[:cap]
    record = Lineage.load(paths.lineage).get(b)
    tokenizer = stage_tokenizer(record)
    result = dose_response(
        stage_model(config, record),
        tokenizer,
        scoring_set(config, items, help_records),
        direction=unit,
        add_layer=add_layer,
        ablate_layers=layers,
        scale=gap,
        alphas=config.causal.alphas,
        labels=(b, a, dataset),
        n_boot=config.behaviour.n_bootstrap,
        ci=config.probing.ci,
        seed=config.seed,
    )
    result.save(paths.causal)
    plot_dose_response(result, paths.causal_figure)
    return result
