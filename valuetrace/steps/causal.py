"""Step `causal`: the dose-response of the post-trained stage along its parent's direction, and
the causal transplant of the primary pair and the known-answer arms (`analysis.transplant`)."""

from __future__ import annotations

import logging

import numpy as np

from valuetrace.activations.store import read_activations
from valuetrace.analysis.causal import CausalRecord, dose_response, plot_dose_response
from valuetrace.analysis.eval_items import behaviour_items, helpfulness_items, scoring_set
from valuetrace.analysis.findings import Findings
from valuetrace.analysis.transplant import TransplantRecord, transplant
from valuetrace.analysis.transplant_patch import parent_directions, record_parent
from valuetrace.analysis.transplant_plan import plan_transplants
from valuetrace.config import RunConfig
from valuetrace.probing import load_results
from valuetrace.records import load_record
from valuetrace.steps.common import stage_model, stage_tokenizer
from valuetrace.training.lineage import Lineage

log = logging.getLogger(__name__)


def causal(config: RunConfig) -> CausalRecord | None:
    """Steer the post-trained stage along its parent's compassion direction and ablate it;
    then the transplants (`transplants`).

    At the first localised layer, alpha x the parent's class gap along its unit mean-difference
    direction is added for each `causal.alphas`; the direction is ablated over all localised
    layers. Writes `analysis/causal.json`, the dose-response figure and
    `analysis/transplant.json`. Without a localised layer (the parent encodes the concept at
    none) there is no dose-response: None, and an earlier run's causal.json is removed.

    Raises:
        MissingStepError: `valuetrace analyze` has not written its findings yet.
    """
    paths = config.paths
    findings = load_record(Findings, paths.findings, step="analyze")
    dataset, (a, b) = findings.primary_dataset, findings.primary_pair
    layers = [findings.concepts[dataset].layers[i] for i in findings.primary.localised()]
    if not layers:
        log.warning("no dose-response: %s encodes %s at no layer (see the verdicts)", a, dataset)
        paths.causal.unlink(missing_ok=True)
        paths.causal_figure.unlink(missing_ok=True)
        transplants(config, findings).save(paths.transplant)
        return None
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
    transplants(config, findings).save(paths.transplant)
    return result


def transplants(config: RunConfig, findings: Findings) -> TransplantRecord:
    """Each planned child with its component along its parent's mean-difference direction set
    to the parent's (`plan_transplants`: the primary pair, and the counter-value and neutral arms
    at the counter arm's localised layers), on the first `causal.max_items` eval items; parent
    and child are loaded one at a time."""
    paths, dataset = config.paths, findings.primary_dataset
    n_boot, ci, seed = config.behaviour.n_bootstrap, config.probing.ci, config.seed
    planned, skipped = plan_transplants(
        findings, config.analysis.counter_arm, config.analysis.neutral_arm
    )
    rows = scoring_set(config, behaviour_items(config)[: config.causal.max_items], [])
    lineage = Lineage.load(paths.lineage)
    results = []
    for plan in planned:
        direction = load_results(paths.probes(dataset, plan.parent)).mean_direction
        parent = lineage.get(plan.parent)
        tokenizer = stage_tokenizer(parent)  # the child runs on the parent's token ids
        stream = record_parent(
            stage_model(config, parent),
            tokenizer,
            rows,
            parent_directions(direction, plan.layers),
            stage=plan.parent,
            n_controls=config.causal.transplant_controls,
            seed=seed,
        )
        child = stage_model(config, lineage.get(plan.child))
        result = transplant(child, tokenizer, rows, stream, plan, n_boot=n_boot, ci=ci, seed=seed)
        results.append(result)
    return TransplantRecord(dataset, ci, n_boot, seed, results, skipped)
