"""Probe-test helpers: planted synthetic activations and scikit-learn reference metrics."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler


def planted(
    n_pairs: int, strengths: tuple[float, ...], d: int = 24, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contrastive pairs whose members differ along a planted unit direction per layer.

    Each pair shares a random base vector (so pairs differ from each other far more than the
    two members do); member 1 sits ``+strength/2`` along the layer's direction, member 0 at
    ``-strength/2``, plus independent unit noise. Features get uneven scales and an offset so
    standardisation matters.
    """
    rng = np.random.default_rng(seed)
    n = 2 * n_pairs
    labels = np.tile([0, 1], n_pairs)
    groups = np.repeat(np.arange(n_pairs), 2)
    base = rng.normal(size=(len(strengths), n_pairs, d)).repeat(2, axis=1)
    direction = rng.normal(size=(len(strengths), d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    shift = np.asarray(strengths)[:, None, None] * (labels - 0.5)[None, :, None]
    acts = base + shift * direction[:, None, :] + rng.normal(size=(len(strengths), n, d))
    acts = acts * rng.uniform(0.5, 3.0, size=d) + rng.normal(scale=5.0, size=d)
    return acts.astype(np.float32), labels, groups


def sklearn_oof(
    acts: np.ndarray, labels: np.ndarray, folds: np.ndarray, C: float = 1.0
) -> np.ndarray:
    """Out-of-fold decision values from scikit-learn on the same folds (tight tolerance)."""
    oof = np.empty(acts.shape[:2])
    for layer in range(acts.shape[0]):
        for fold in np.unique(folds):
            train, test = folds != fold, folds == fold
            scaler = StandardScaler().fit(acts[layer, train])
            model = LogisticRegression(C=C, tol=1e-10, max_iter=100_000)
            model.fit(scaler.transform(acts[layer, train]), labels[train])
            oof[layer, test] = model.decision_function(scaler.transform(acts[layer, test]))
    return oof


def oof_metrics(oof: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer accuracy and AUROC of decision values, computed with scikit-learn."""
    acc = ((oof > 0) == (labels == 1)).mean(1)
    auc = np.array([roc_auc_score(labels, row) for row in oof])
    return acc, auc
