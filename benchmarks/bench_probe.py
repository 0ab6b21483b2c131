"""Batched torch probe vs a per-layer, per-problem scikit-learn loop, on two shapes side by side.

Why: probing every layer of every stage is the inner loop of a study; this checks the batched
solver is much faster than the obvious loop while agreeing with it. Goal (issue 13): ≥ 40×
faster with per-layer accuracy within 0.01, on each shape:

- demo: the built-in demo's probe (5 hidden-state layers × 480 examples × 128 dims);
- real: SmolLM2-135M's (31 layers × 2,000 examples × 576 dims).

Both fit what ``probe_layers`` fits with a fixed C: 5 grouped folds of the real labels, 5 of
the control task's labels (labels permuted within each pair, ``probing.controls``) and one
full-data fit; the scikit-learn side fits the same 11 problems per layer one at a time.

Data: seeded synthetic contrastive pairs (the members share a random base vector and differ
along a planted unit direction per layer, strength rising then falling with depth), unit noise,
uneven feature scales and offsets. Both sides use the same folds, the same C, standardisation
fitted on each problem's training rows, and scikit-learn's default stopping rule (``tol`` 1e-4
on the largest gradient entry of the mean objective).

Run: ``python benchmarks/bench_probe.py`` (``--repeats 1`` for a quicker, noisier run).
"""

import argparse
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from valuetrace.probing.controls import control_labels
from valuetrace.probing.folds import grouped_folds
from valuetrace.probing.logistic import fit_logistic

T = TypeVar("T")
N_FOLDS, C, TOL, SEED, GOAL = 5, 1.0, 1e-4, 0, 40.0


@dataclass(frozen=True)
class Shape:
    """One benchmark shape: hidden-state layers, contrastive pairs (2 examples each), width."""

    name: str
    layers: int
    pairs: int
    width: int


SHAPES = (Shape("demo", 5, 240, 128), Shape("real", 31, 1000, 576))


@dataclass(frozen=True)
class Problems:
    """Activations ``[l, n, d]`` and the 11 problems: label rows, training masks ``[p, n]``."""

    acts: np.ndarray
    labels: np.ndarray
    y: np.ndarray
    train: np.ndarray
    folds: np.ndarray


def make_problems(shape: Shape) -> Problems:
    """Seeded synthetic pairs of ``shape`` and the real, control and full-data problems."""
    rng = np.random.default_rng(SEED)
    n = 2 * shape.pairs
    labels = np.tile([0, 1], shape.pairs)
    groups = np.repeat(np.arange(shape.pairs), 2)
    strength = 3.0 * np.sin(np.linspace(0.15, np.pi - 0.15, shape.layers))
    direction = rng.normal(size=(shape.layers, shape.width))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    acts = rng.normal(size=(shape.layers, shape.pairs, shape.width)).repeat(2, axis=1)
    acts += rng.normal(size=(shape.layers, n, shape.width))
    acts += (strength[:, None, None] * (labels - 0.5)[None, :, None]) * direction[:, None, :]
    acts = acts * rng.uniform(0.5, 3.0, size=shape.width) + rng.normal(scale=5.0, size=shape.width)
    folds = grouped_folds(groups, N_FOLDS, SEED, labels)
    control = control_labels(labels, groups, SEED)
    held_in = [folds != f for f in range(N_FOLDS)]
    y = np.stack([labels] * N_FOLDS + [control] * N_FOLDS + [labels])
    train = np.stack(held_in + held_in + [np.ones(n, dtype=bool)])
    return Problems(acts.astype(np.float32), labels, y, train, folds)


def torch_probe(p: Problems) -> tuple[np.ndarray, int]:
    """Decisions ``[l, problems, n]`` from one batched fit of all layers × problems."""
    fit = fit_logistic(
        torch.from_numpy(p.acts),
        torch.from_numpy(p.y.astype(np.float32)),
        torch.from_numpy(p.train),
        torch.full((len(p.y),), C),
        tol=TOL,
    )
    assert bool(fit.converged.all()), "torch probe did not converge"
    return fit.decision.numpy(), fit.n_iter


def sklearn_probe(p: Problems) -> np.ndarray:
    """Decisions ``[l, problems, n]`` from a scikit-learn fit per layer and problem."""
    out = np.empty((p.acts.shape[0], len(p.y), p.acts.shape[1]))
    for layer, x in enumerate(p.acts):
        for k, (y, train) in enumerate(zip(p.y, p.train, strict=True)):
            scaler = StandardScaler().fit(x[train])
            model = LogisticRegression(C=C, tol=TOL, max_iter=1000)
            model.fit(scaler.transform(x[train]), y[train])
            out[layer, k] = model.decision_function(scaler.transform(x))
    return out


def out_of_fold_accuracy(decision: np.ndarray, p: Problems, first: int) -> np.ndarray:
    """Per-layer held-out accuracy of problems ``first .. first+4`` (one per fold)."""
    y = p.y[first]
    oof = decision[:, first + p.folds, np.arange(len(p.folds))]
    return ((oof > 0) == (y == 1)).mean(1)


def timed(fn: Callable[..., T], *args: object, repeats: int) -> tuple[T, float]:
    """Result and median wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - start)
    return out, float(np.median(times))


@dataclass(frozen=True)
class Row:
    """One shape's measured figures."""

    t_torch: float
    t_sklearn: float
    n_iter: int
    acc_diff: float
    ctrl_diff: float
    accuracy: np.ndarray


def measure(shape: Shape, repeats: int) -> Row:
    """Time both probes on one shape and compare their held-out accuracies."""
    p = make_problems(shape)
    (dec_t, n_iter), t_torch = timed(torch_probe, p, repeats=repeats)
    dec_s, t_sk = timed(sklearn_probe, p, repeats=repeats)
    acc = [out_of_fold_accuracy(d, p, 0) for d in (dec_t, dec_s)]
    ctrl = [out_of_fold_accuracy(d, p, N_FOLDS) for d in (dec_t, dec_s)]
    return Row(
        t_torch,
        t_sk,
        n_iter,
        float(np.abs(acc[0] - acc[1]).max()),
        float(np.abs(ctrl[0] - ctrl[1]).max()),
        acc[0],
    )


def main() -> None:
    """Time both probes on both shapes and print them side by side with the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per side (median)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    warnings.simplefilter("error")  # a scikit-learn ConvergenceWarning would void the comparison
    warm = make_problems(Shape("warm-up", 1, 100, 32))
    torch_probe(warm), sklearn_probe(warm)  # import-time and first-call costs off the clock
    rows = {s.name: measure(s, args.repeats) for s in SHAPES}
    print(f"probe benchmark: {N_FOLDS}-fold grouped CV + control task + full fit (11 problems")
    print(f"per layer), C={C}, tol={TOL}, torch threads={torch.get_num_threads()}, ", end="")
    print(f"median of {args.repeats}")
    head = " ".join(f"{s.name} {s.layers}x{2 * s.pairs}x{s.width}".rjust(22) for s in SHAPES)
    print(f"{'':36}{head}")

    def line(label: str, cell: Callable[[Row], str]) -> None:
        print(f"{label:36}" + " ".join(cell(rows[s.name]).rjust(22) for s in SHAPES))

    line("batched torch (s)", lambda r: f"{r.t_torch:.2f} ({r.n_iter} steps)")
    line("scikit-learn loop (s)", lambda r: f"{r.t_sklearn:.2f}")
    line("speed ratio (goal >= 40x)", lambda r: f"{r.t_sklearn / r.t_torch:.1f}x")
    line("max accuracy diff (goal <= 0.01)", lambda r: f"{r.acc_diff:.4f}")
    line("max control accuracy diff", lambda r: f"{r.ctrl_diff:.4f}")
    line("accuracy range (torch)", lambda r: f"{r.accuracy.min():.3f}-{r.accuracy.max():.3f}")

    def verdict(r: Row) -> str:
        return "met" if r.t_sklearn / r.t_torch >= GOAL and r.acc_diff <= 0.01 else "NOT met"

    line("goal", verdict)


if __name__ == "__main__":
    main()
