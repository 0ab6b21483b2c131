"""Batched torch probe vs a per-layer, per-fold scikit-learn loop on 13 × 2,000 × 768 activations.

Why: probing every layer of every stage is the inner loop of a study; this checks the batched
solver is much faster than the obvious loop while agreeing with it. Goal: ≥ 20× faster with
per-layer accuracy within 0.01.

Data: seeded synthetic contrastive pairs (1,000 pairs; the members share a random base vector
and differ along a planted unit direction per layer, strength rising then falling with depth),
unit noise, uneven feature scales and offsets. Both sides use the same 5 grouped folds, the
same C, standardisation fitted on each fold's training rows, and scikit-learn's default
stopping rule (``tol`` 1e-4 on the largest gradient entry of the mean objective).

Run: ``python benchmarks/bench_probe.py``.
"""

import time
import warnings
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from valuetrace.probing.folds import grouped_folds
from valuetrace.probing.logistic import fit_logistic

from valuetrace.stats import auroc

T = TypeVar("T")
N_LAYERS, N_PAIRS, WIDTH, N_FOLDS, C, TOL, SEED = 13, 1000, 768, 5, 1.0, 1e-4, 0


def make_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Activations ``[13, 2000, 768]`` float32, 0/1 labels and pair ids."""
    rng = np.random.default_rng(SEED)
    n = 2 * N_PAIRS
    labels = np.tile([0, 1], N_PAIRS)
    groups = np.repeat(np.arange(N_PAIRS), 2)
    strength = 3.0 * np.sin(np.linspace(0.15, np.pi - 0.15, N_LAYERS))
    direction = rng.normal(size=(N_LAYERS, WIDTH))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    acts = rng.normal(size=(N_LAYERS, N_PAIRS, WIDTH)).repeat(2, axis=1)
    acts += rng.normal(size=(N_LAYERS, n, WIDTH))
    acts += (strength[:, None, None] * (labels - 0.5)[None, :, None]) * direction[:, None, :]
    acts = acts * rng.uniform(0.5, 3.0, size=WIDTH) + rng.normal(scale=5.0, size=WIDTH)
    return acts.astype(np.float32), labels, groups


def torch_probe(acts: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, int]:
    """Out-of-fold decisions ``[layers, n]`` from one batched fit of all layers × folds."""
    train = torch.from_numpy(np.stack([folds != f for f in range(N_FOLDS)]))
    y = torch.from_numpy(np.tile(labels, (N_FOLDS, 1)).astype(np.float32))
    fit = fit_logistic(torch.from_numpy(acts), y, train, torch.full((N_FOLDS,), C), tol=TOL)
    assert bool(fit.converged.all()), "torch probe did not converge"
    decision = fit.decision.numpy()
    return decision[:, folds, np.arange(len(folds))], fit.n_iter


def sklearn_probe(acts: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Out-of-fold decisions from a scikit-learn fit per layer and fold."""
    oof = np.empty(acts.shape[:2])
    for layer in range(acts.shape[0]):
        for fold in range(N_FOLDS):
            train, test = folds != fold, folds == fold
            scaler = StandardScaler().fit(acts[layer, train])
            model = LogisticRegression(C=C, tol=TOL, max_iter=1000)
            model.fit(scaler.transform(acts[layer, train]), labels[train])
            oof[layer, test] = model.decision_function(scaler.transform(acts[layer, test]))
    return oof


def timed(fn: Callable[..., T], *args: object, repeats: int = 3) -> tuple[T, float]:
    """Result and median wall time of `repeats` calls (single runs vary ±20% here)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - start)
    return out, float(np.median(times))


def main() -> None:
    """Time both probes on the same folds and print the comparison table."""
    torch.set_num_threads(2)
    warnings.simplefilter("error")  # a scikit-learn ConvergenceWarning would void the comparison
    acts, labels, groups = make_data()
    folds = grouped_folds(groups, N_FOLDS, SEED, labels)
    small = acts[:1, :200, :32], labels[:200], folds[:200]
    torch_probe(*small), sklearn_probe(*small)  # warm both libraries up
    (oof_torch, n_iter), t_torch = timed(torch_probe, acts, labels, folds)
    oof_sk, t_sk = timed(sklearn_probe, acts, labels, folds)

    acc_t = ((oof_torch > 0) == (labels == 1)).mean(1)
    acc_s = ((oof_sk > 0) == (labels == 1)).mean(1)
    auc_t, auc_s = auroc(oof_torch, labels), auroc(oof_sk, labels)
    acc_diff = np.abs(acc_t - acc_s).max()
    auc_diff = np.abs(auc_t - auc_s).max()
    ratio = t_sk / t_torch
    print(f"probe benchmark: {N_LAYERS} layers x {2 * N_PAIRS} examples x {WIDTH} dims, ")
    print(f"{N_FOLDS}-fold grouped CV, C={C}, tol={TOL}, torch threads={torch.get_num_threads()}")
    print(f"{'':38}{'time (s), median of 3':>10}")
    print(f"{'batched torch (all layers x folds)':38}{t_torch:>10.2f}  ({n_iter} L-BFGS steps)")
    print(f"{'scikit-learn loop (per layer, fold)':38}{t_sk:>10.2f}")
    print(f"{'speed ratio (sklearn / torch)':38}{ratio:>9.1f}x")
    print(f"{'max per-layer accuracy difference':38}{acc_diff:>10.4f}")
    print(f"{'max per-layer AUROC difference':38}{auc_diff:>10.4f}")
    print("per-layer accuracy (torch / sklearn):")
    print("  " + " ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(acc_t, acc_s, strict=True)))
    verdict = "met" if ratio >= 20 and acc_diff <= 0.01 else "NOT met"
    print(f"goal (>= 20x faster, accuracy within 0.01 per layer): {verdict}")


if __name__ == "__main__":
    main()
