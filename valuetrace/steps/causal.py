"""Step `causal`: ablate or add the parent's compassion direction at the localised layers."""

from __future__ import annotations

import json

import numpy as np

from valuetrace.activations.store import read_activations
from valuetrace.analysis.findings import Findings
from valuetrace.config import (
    RunConfig,
)
from valuetrace.probing import (
    load_results,
)
from valuetrace.records import load_record
from valuetrace.steps.common import behaviour_items, stage_model, stage_tokenizer
from valuetrace.training.lineage import Lineage


def causal(config: RunConfig) -> list[dict[str, object]]:
    """Ablate the parent stage's compassion direction over the localised band of layers, and add
    its class gap back (at the band's first layer) into the post-trained model; write how the
    behavioural compassion score moves."""
    from valuetrace.analysis.causal import causal_effect

    paths = config.paths
    findings = load_record(Findings, paths.findings, step="analyze")
    dataset = findings.primary_dataset
    a, b = findings.primary_pair
    concept = findings.concepts[dataset]
    layers = [concept.layers[i] for i in findings.primary.localised()]
    cache = read_activations(paths.activations(dataset, a), layers=layers)
    direction = load_results(paths.probes(dataset, a)).mean_direction.vectors
    rows = [concept.layers.index(layer) for layer in layers]
    units = {
        layer: direction[r] / np.linalg.norm(direction[r])
        for layer, r in zip(layers, rows, strict=True)
    }
    gap = {
        layer: float(
            (cache.acts[i][cache.labels == 1] @ units[layer]).mean()
            - (cache.acts[i][cache.labels == 0] @ units[layer]).mean()
        )
        for i, layer in enumerate(layers)
    }
    items = behaviour_items(config)
    lineage = Lineage.load(paths.lineage)
    results = []
    interventions = (
        (a, "ablate", layers, f"remove {a}'s direction from {a} at layers {layers}"),
        (b, "add", layers[:1], f"add {a}'s class gap along it into {b} at layer {layers[0]}"),
    )
    for stage, mode, where, label in interventions:
        record = lineage.get(stage)
        tokenizer = stage_tokenizer(record)
        result = causal_effect(
            stage_model(config, record),
            tokenizer,
            [i["prompt"] for i in items],
            [i["compassionate"] for i in items],
            [i["dismissive"] for i in items],
            {layer: units[layer] for layer in where},
            mode,
            scale={layer: gap[layer] for layer in where},
            n_boot=config.behaviour.n_bootstrap,
            seed=config.seed,
            batch_size=config.extract.batch_size,
            chat=config.model.chat_template,
            max_length=config.extract.max_length,
        ).to_dict()
        results.append({"label": label, "stage": stage, **result})
    (paths.analysis / "causal.json").write_text(json.dumps(results, indent=1))
    return results
