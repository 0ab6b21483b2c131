"""Grouped cross-validation folds: every member of a contrastive group lands in the same fold.

Why: the two sentences of a pair share almost everything but the value-laden wording, so a probe
that saw one member in training would be graded on a near copy of it.
"""

import numpy as np
from jaxtyping import Int, Shaped

from valuetrace.errors import ConfigError, DataError


def grouped_folds(
    groups: Shaped[np.ndarray, " n"],
    n_folds: int,
    seed: int,
    labels: Int[np.ndarray, " n"] | None = None,
) -> Int[np.ndarray, " n"]:
    """Fold id per example, whole groups per fold, fold sizes (and class counts) balanced.

    Groups are placed largest first (ties in seeded random order) into the fold with the fewest
    examples, then the fewest of the group's majority class. With ``labels``, every fold's
    training part and test part must hold both classes.
    """
    groups = np.asarray(groups)
    if n_folds < 2:
        raise ConfigError(f"n_folds is {n_folds}; use at least 2 folds")
    unique, inverse = np.unique(groups, return_inverse=True)
    if len(unique) < n_folds:
        raise DataError(
            f"{len(unique)} groups cannot fill {n_folds} folds (each fold needs whole groups); "
            f"use n_folds <= {len(unique)} or add examples"
        )
    sizes = np.bincount(inverse)
    positives = (
        np.bincount(inverse, weights=labels) if labels is not None else np.zeros(len(unique))
    )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    order = order[np.argsort(-sizes[order], kind="stable")]
    fold_size = np.zeros(n_folds)
    fold_pos = np.zeros(n_folds)
    fold_neg = np.zeros(n_folds)
    fold_of_group = np.empty(len(unique), dtype=np.int64)
    for g in order:
        majority_pos = positives[g] * 2 >= sizes[g]
        fill = fold_pos if majority_pos else fold_neg
        best = np.lexsort((fill, fold_size))[0]
        fold_of_group[g] = best
        fold_size[best] += sizes[g]
        fold_pos[best] += positives[g]
        fold_neg[best] += sizes[g] - positives[g]
    folds = fold_of_group[inverse]
    if labels is not None:
        check_fold_classes(folds, labels)
    return folds


def check_fold_classes(folds: Int[np.ndarray, " n"], labels: Int[np.ndarray, " n"]) -> None:
    """Raise if any fold's training part or test part holds only one class."""
    for fold in np.unique(folds):
        for part, mask in (("test", folds == fold), ("training", folds != fold)):
            classes = np.unique(labels[mask])
            if len(classes) < 2:
                raise DataError(
                    f"fold {int(fold)}'s {part} part holds only class {classes.tolist()}: the "
                    "groups put one class in too few folds; use fewer folds or regroup so that "
                    "groups mix both classes"
                )
