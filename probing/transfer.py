"""Cross-stage transfer: every stage's probe scored on every stage's activations of the same texts.

Why: if the compassion probe trained on the base model still reads the fine-tuned model's
activations, the representation moved little; where transfer drops, it changed. The diagonal is
each probe on its own training activations (in-sample). Where a stage's probe is undefined at a
layer (that stage's activations were one vector for every example there), its row of the
matrix is NaN at that layer, never a chance-level number. Given bootstrap weights over the
test examples, each AUROC gets a percentile interval (probes fitted on one probe set and scored
on another, e.g. the sources of one concept, use the same call with one test set).
"""

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float, Int

from valuetrace.errors import DataError
from valuetrace.probing.probe import Probe
from valuetrace.stats import auroc, percentile_ci


@dataclass(frozen=True)
class TransferResult:
    """Accuracy and AUROC of probe ``i`` on activations ``j`` at each layer (NaN: no probe).

    ``auroc_ci`` holds the AUROC's bootstrap interval ``(lo, hi)`` when weights were given.
    """

    train_stages: list[str]
    test_stages: list[str]
    layers: list[int]
    accuracy: Float[np.ndarray, "s t l"]
    auroc: Float[np.ndarray, "s t l"]
    auroc_ci: Float[np.ndarray, "s t l 2"] | None = None


def transfer_matrix(
    probes: dict[str, Probe],
    acts: dict[str, Float[np.ndarray, "l n d"]],
    labels: Int[np.ndarray, " n"],
    weights: Float[np.ndarray, "b n"] | None = None,
    ci: float = 0.95,
) -> TransferResult:
    """Score each stage's probe on each stage's activations; arrays are ``[train, test, layer]``.

    NaN at the layers where the training stage's probe is undefined (``Probe.undefined``).
    ``weights`` (bootstrap replicates of the test examples, `stats.group_bootstrap_weights`)
    add a percentile interval at level ``ci`` to every AUROC.
    Raises ``DataError`` when probes and activations disagree in layers, width or examples, or
    the weights do not cover the examples.
    """
    labels = np.asarray(labels)
    if not probes or not acts:
        raise DataError("transfer_matrix needs at least one probe and one activation set")
    shapes = {name: np.shape(a) for name, a in acts.items()}
    shape = next(iter(shapes.values()))
    if len(set(shapes.values())) > 1 or len(shape) != 3 or shape[1] != len(labels):
        raise DataError(
            f"activation shapes {shapes} with {len(labels)} labels; pass [n_layers, n_examples, "
            "d_model] arrays of the same shape for every stage and one label per example"
        )
    for name, probe in probes.items():
        if probe.d_model != shape[2] or len(probe.layers) != shape[0]:
            raise DataError(
                f"probe {name!r} reads {len(probe.layers)} layers of width {probe.d_model} but "
                f"the activations have {shape[0]} layers of width {shape[2]}; use probes fitted "
                "on the same layers of the same model"
            )
    if len({tuple(p.layers) for p in probes.values()}) > 1:
        raise DataError(
            f"probes cover different layers { ({k: p.layers for k, p in probes.items()}) }; "
            "fit every stage's probe on the same layers"
        )
    if weights is not None and (np.ndim(weights) != 2 or np.shape(weights)[1] != len(labels)):
        raise DataError(
            f"bootstrap weights have shape {np.shape(weights)} for {len(labels)} examples; pass "
            "[n_boot, n_examples] weights of the test examples (stats.group_bootstrap_weights)"
        )
    train_names, test_names = list(probes), list(acts)
    acc = np.empty((len(train_names), len(test_names), shape[0]))
    auc = np.empty_like(acc)
    auc_ci = None if weights is None else np.empty((*acc.shape, 2))
    for i, name in enumerate(train_names):
        blank = [layer in probes[name].undefined for layer in probes[name].layers]
        for j, other in enumerate(test_names):
            scores = probes[name].decision(acts[other])
            acc[i, j] = ((scores > 0) == (labels == 1)).mean(1)
            auc[i, j] = auroc(scores, labels)
            if auc_ci is not None:
                safe = np.where(np.isnan(scores), 0.0, scores)  # undefined layers: blanked below
                auc_ci[i, j] = percentile_ci(auroc(safe, labels, weights), ci)
        acc[i, :, blank] = auc[i, :, blank] = np.nan
        if auc_ci is not None:
            auc_ci[i, :, blank] = np.nan
    return TransferResult(
        train_stages=train_names,
        test_stages=test_names,
        layers=list(next(iter(probes.values())).layers),
        accuracy=acc,
        auroc=auc,
        auroc_ci=auc_ci,
    )
