"""Per-layer linear probes with grouped cross-validation, bootstrap intervals and a control task.

Why: the question "where does compassion weaken" is answered by comparing, layer by layer, how
well a linear probe reads the value out of each stage's activations; the comparison needs honest
out-of-fold scores, uncertainty that respects the contrastive pairs, and a control task to show
the probe reads the representation rather than memorising.

One call fits every layer × fold problem (plus control labels, candidate Cs and the full-data
probe) in a single batched solve (``probing.logistic``). C is fixed (default 1.0) or, given a
list, chosen per layer over that grid by nested grouped CV on out-of-fold log-loss: each outer
fold's C comes from inner folds inside its training part (the other outer folds), and the
full-data probe's C from the outer CV. Ties go to the smaller C.

A layer where every example has the same activations (``probing.degenerate``) has nothing to
probe: its metrics, intervals, out-of-fold scores, C and probe weights are NaN, the reason is
kept in ``undefined``, and every other layer is probed as usual.
"""

import warnings
from dataclasses import asdict, dataclass, field
from itertools import permutations
from typing import overload

import numpy as np
import torch
from jaxtyping import Bool, Float, Int, Shaped

from valuetrace.config import ProbingConfig, check_ranges
from valuetrace.errors import DataError
from valuetrace.probing.controls import control_labels
from valuetrace.probing.degenerate import constant_layers
from valuetrace.probing.direction import Direction
from valuetrace.probing.folds import check_fold_classes, grouped_folds
from valuetrace.probing.logistic import LogisticFit, fit_logistic
from valuetrace.stats import accuracy, auroc, check_labels, group_bootstrap_weights, percentile_ci


@dataclass(frozen=True)
class Probe:
    """Logistic probe per layer with its standardisation; decides on raw activations.

    ``undefined`` maps each model layer without a probe to the reason; its ``coef``,
    ``intercept`` and ``C`` are NaN there.
    """

    coef: Float[np.ndarray, "l d"]
    intercept: Float[np.ndarray, " l"]
    mean: Float[np.ndarray, "l d"]
    std: Float[np.ndarray, "l d"]
    layers: list[int]
    C: Float[np.ndarray, " l"]
    undefined: dict[int, str] = field(default_factory=dict)

    def decision(self, acts: Float[np.ndarray, "l n d"]) -> Float[np.ndarray, "l n"]:
        """Decision values (log-odds of label 1) per layer and example; NaN at undefined layers."""
        acts = np.asarray(acts)
        if acts.ndim != 3 or acts.shape[0] != len(self.layers) or acts.shape[2] != self.d_model:
            raise DataError(
                f"acts has shape {acts.shape} but the probe expects [{len(self.layers)}, n, "
                f"{self.d_model}]; pass activations of the same layers and width"
            )
        weights = self.coef / self.std
        offset = self.intercept - (weights * self.mean).sum(1)
        return np.einsum("lnd,ld->ln", acts, weights.astype(acts.dtype)) + offset[:, None]

    def predict_proba(self, acts: Float[np.ndarray, "l n d"]) -> Float[np.ndarray, "l n"]:
        """Probability of label 1 (compassionate) per layer and example."""
        return 1.0 / (1.0 + np.exp(-self.decision(acts)))

    @property
    def d_model(self) -> int:
        """Width of the activations the probe reads."""
        return int(self.coef.shape[1])


@dataclass(frozen=True)
class ProbeResults:
    """Per-layer out-of-fold metrics with intervals, the full-data probe and its directions.

    ``undefined`` maps each model layer that could not be probed to the reason; every per-layer
    array is NaN there.
    """

    layers: list[int]
    accuracy: Float[np.ndarray, " l"]
    accuracy_ci: Float[np.ndarray, "l 2"]
    auroc: Float[np.ndarray, " l"]
    auroc_ci: Float[np.ndarray, "l 2"]
    control_accuracy: Float[np.ndarray, " l"] | None
    control_accuracy_ci: Float[np.ndarray, "l 2"] | None
    selectivity: Float[np.ndarray, " l"] | None
    selectivity_ci: Float[np.ndarray, "l 2"] | None
    oof_scores: Float[np.ndarray, "l n"]
    control_oof_scores: Float[np.ndarray, "l n"] | None
    labels: Int[np.ndarray, " n"]
    folds: Int[np.ndarray, " n"]
    C: Float[np.ndarray, " l"]
    fold_C: Float[np.ndarray, "l k"]
    probe: Probe
    probe_direction: Direction
    mean_direction: Direction
    config: ProbingConfig
    seed: int
    provenance: dict[str, str] = field(default_factory=dict)
    undefined: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Per-layer metrics (with ``_lo``/``_hi`` bounds), Cs, config, seed, provenance; JSON-safe.

        NaN becomes None; metrics of a run without a control task are None; ``undefined`` maps
        each unprobed layer (as a string key) to the reason.
        """
        out: dict[str, object] = {
            "layers": list(self.layers),
            "undefined": {str(layer): reason for layer, reason in self.undefined.items()},
            "n_examples": len(self.labels),
            "config": asdict(self.config),
            "seed": self.seed,
            "provenance": dict(self.provenance),
            "C": _json_safe(self.C),
            "fold_C": _json_safe(self.fold_C),
        }
        for name in ("accuracy", "auroc", "control_accuracy", "selectivity"):
            value, ci = getattr(self, name), getattr(self, f"{name}_ci")
            out[name] = None if value is None else _json_safe(value)
            out[f"{name}_lo"] = None if ci is None else _json_safe(ci[:, 0])
            out[f"{name}_hi"] = None if ci is None else _json_safe(ci[:, 1])
        return out


def probe_layers(
    acts: Float[np.ndarray, "l n d"],
    labels: Int[np.ndarray, " n"],
    groups: Shaped[np.ndarray, " n"],
    config: ProbingConfig | None = None,
    *,
    seed: int = 0,
    layers: list[int] | None = None,
    provenance: dict[str, str] | None = None,
) -> ProbeResults:
    """Probe every layer: out-of-fold accuracy/AUROC with group-bootstrap CIs, control, probe.

    ``config`` (the run config's ``probing`` section) sets the folds, C, bootstrap size and
    interval level; ``seed`` seeds the folds, the control labels and the bootstrap. A layer with
    one activation vector for every example is reported as undefined (NaN metrics, reason in
    ``ProbeResults.undefined``); the others are probed as usual.

    Raises:
        ConfigError: a ``config`` value is out of range (the field is named).
        DataError: bad shapes, labels or groups, or non-finite activations.
    """
    config = config or ProbingConfig()
    check_ranges(config, "probing")
    acts, labels, groups = _validate(acts, labels, groups)
    layers = _layer_ids(layers, acts.shape[0])
    undefined = constant_layers(acts, layers)
    blank = np.array([layer in undefined for layer in layers], dtype=bool)
    folds = grouped_folds(groups, config.n_folds, seed, labels)
    control = control_labels(labels, groups, seed) if config.control else None
    if control is not None:
        check_fold_classes(folds, control)
    plan = _Plan(labels, control, folds, config.C_grid)
    fit = _fit(acts, plan.y, plan.train, plan.C, config.tol, config.max_iter)
    decision = fit.decision.numpy().astype(np.float64)  # [l, p, n]

    fold_choice, full_choice = plan.choose_C(decision)
    oof = plan.out_of_fold(decision, "real", fold_choice)
    correct = (oof > 0) == (labels == 1)
    weights = group_bootstrap_weights(groups, config.n_bootstrap, seed)
    acc_ci, auc_ci, acc_boot = _intervals(oof, correct, labels, weights, config.ci)
    ctrl_oof = ctrl_acc = ctrl_ci = sel = sel_ci = None
    if control is not None:
        ctrl_oof = plan.out_of_fold(decision, "control", fold_choice)
        ctrl_correct = (ctrl_oof > 0) == (control == 1)
        ctrl_acc = accuracy(ctrl_correct)
        sel = correct.mean(1) - ctrl_acc
        ctrl_boot = accuracy(ctrl_correct, weights)
        ctrl_ci = percentile_ci(ctrl_boot, config.ci)
        sel_ci = percentile_ci(acc_boot - ctrl_boot, config.ci)

    grid = np.array(config.C_grid)
    C = _blanked(blank, grid[full_choice])
    probe = _probe_from_fit(fit, plan.full_index(full_choice), layers, C, undefined)
    record = {
        "source": "valuetrace.probing.probe_layers",
        "n_examples": str(len(labels)),
        "C": ",".join(f"{c:g}" for c in C),
        **(provenance or {}),
    }
    per_layer = {
        "accuracy": correct.mean(1),
        "accuracy_ci": acc_ci,
        "auroc": auroc(oof, labels),
        "auroc_ci": auc_ci,
        "control_accuracy": ctrl_acc,
        "control_accuracy_ci": ctrl_ci,
        "selectivity": sel,
        "selectivity_ci": sel_ci,
        "oof_scores": oof,
        "control_oof_scores": ctrl_oof,
        "fold_C": grid[fold_choice],
    }
    return ProbeResults(
        layers=layers,
        **{name: _blanked(blank, value) for name, value in per_layer.items()},
        labels=labels,
        folds=folds,
        C=C,
        probe=probe,
        probe_direction=Direction.from_probe(probe, record),
        mean_direction=Direction.from_mean_difference(acts, labels, layers, record),
        config=config,
        seed=seed,
        provenance=dict(provenance or {}),
        undefined=undefined,
    )


def fit_probe(
    acts: Float[np.ndarray, "l n d"],
    labels: Int[np.ndarray, " n"],
    C: float = 1.0,
    *,
    layers: list[int] | None = None,
    tol: float = 1e-4,
    max_iter: int = 1000,
) -> Probe:
    """Fit one probe per layer on all examples (standardised on all of them), all layers at once.

    A layer with one activation vector for every example gets no probe (NaN weights, reason in
    ``Probe.undefined``). Raises ``DataError`` for bad shapes, labels or non-finite activations.
    """
    acts, labels, _ = _validate(acts, labels, np.arange(len(labels)))
    layers = _layer_ids(layers, acts.shape[0])
    undefined = constant_layers(acts, layers)
    blank = np.array([layer in undefined for layer in layers], dtype=bool)
    train = torch.ones(1, len(labels), dtype=torch.bool)
    y = torch.from_numpy(labels[None].astype(np.float32))
    fit = _fit(acts, y, train, torch.tensor([float(C)]), tol, max_iter)
    return _probe_from_fit(
        fit,
        np.zeros(len(layers), dtype=np.int64),
        layers,
        _blanked(blank, np.full(len(layers), C, dtype=np.float64)),
        undefined,
    )


class _Plan:
    """The batched problems of one run and how their decisions map back to folds and Cs."""

    def __init__(
        self,
        labels: np.ndarray,
        control: np.ndarray | None,
        folds: np.ndarray,
        grid: tuple[float, ...],
    ) -> None:
        """Lay out outer-fold problems per label set and C, inner problems, full-data problems."""
        self.folds = folds
        self.labels = labels
        self.n_folds = int(folds.max()) + 1
        self.n_c = len(grid)
        label_sets = {"real": labels} | ({"control": control} if control is not None else {})
        rows_y: list[np.ndarray] = []
        rows_train: list[np.ndarray] = []
        rows_c: list[float] = []

        def add(y: np.ndarray, train: np.ndarray, c: float) -> int:
            rows_y.append(y)
            rows_train.append(train)
            rows_c.append(c)
            return len(rows_y) - 1

        self.outer = {
            (name, ci, f): add(y, folds != f, c)
            for name, y in label_sets.items()
            for ci, c in enumerate(grid)
            for f in range(self.n_folds)
        }
        self.inner: dict[tuple[int, int, int], int] = {}
        if self.n_c > 1:
            for ci, c in enumerate(grid):
                for f, g in permutations(range(self.n_folds), 2):
                    train = (folds != f) & (folds != g)
                    if len(np.unique(labels[train])) < 2:
                        raise DataError(
                            f"nested CV: the rows outside folds {f} and {g} hold one class; "
                            "use fewer folds or a fixed C"
                        )
                    self.inner[(ci, f, g)] = add(labels, train, c)
        self.full = [add(labels, np.ones_like(folds, dtype=bool), c) for c in grid]
        self.y = torch.from_numpy(np.stack(rows_y).astype(np.float32))
        self.train = torch.from_numpy(np.stack(rows_train))
        self.C = torch.tensor(rows_c, dtype=torch.float64)

    def choose_C(self, decision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid index per (layer, outer fold) from inner folds, and per layer from outer folds."""
        n_layers = decision.shape[0]
        if self.n_c == 1:
            zeros = np.zeros(n_layers, dtype=np.int64)
            return np.zeros((n_layers, self.n_folds), dtype=np.int64), zeros
        inner = np.zeros((n_layers, self.n_folds, self.n_c))
        for (ci, f, g), p in self.inner.items():
            rows = self.folds == g
            inner[:, f, ci] += _log_loss(decision[:, p, rows], self.labels[rows])
        outer = np.zeros((n_layers, self.n_c))
        for ci in range(self.n_c):
            for f in range(self.n_folds):
                rows = self.folds == f
                p = self.outer[("real", ci, f)]
                outer[:, ci] += _log_loss(decision[:, p, rows], self.labels[rows])
        return inner.argmin(2), outer.argmin(1)

    def out_of_fold(self, decision: np.ndarray, name: str, choice: np.ndarray) -> np.ndarray:
        """Held-out decision values ``[l, n]``, each fold scored by its own model and C."""
        oof = np.empty((decision.shape[0], decision.shape[2]))
        for f in range(self.n_folds):
            rows = self.folds == f
            problems = [self.outer[(name, ci, f)] for ci in choice[:, f]]
            oof[:, rows] = decision[np.arange(decision.shape[0]), problems][:, rows]
        return oof

    def full_index(self, choice: np.ndarray) -> np.ndarray:
        """Problem index of the full-data fit at each layer's chosen C."""
        return np.array(self.full)[choice]


def _fit(
    acts: np.ndarray,
    y: torch.Tensor,
    train: torch.Tensor,
    C: torch.Tensor,
    tol: float,
    max_iter: int,
) -> LogisticFit:
    """Batched fit, warning (not failing) when some problem hit ``max_iter``."""
    fit = fit_logistic(torch.from_numpy(acts), y, train, C, tol=tol, max_iter=max_iter)
    if not bool(fit.converged.all()):
        warnings.warn(
            f"{int((~fit.converged).sum())} probe fits did not reach tol {tol} in {max_iter} "
            "iterations; raise max_iter or use a smaller C",
            RuntimeWarning,
            stacklevel=3,
        )
    return fit


def _probe_from_fit(
    fit: LogisticFit,
    problem: np.ndarray,
    layers: list[int],
    C: np.ndarray,
    undefined: dict[int, str],
) -> Probe:
    """Probe made of problem ``problem[l]`` at each layer ``l``; NaN weights where undefined."""
    idx = np.arange(len(layers)), problem
    blank = np.array([layer in undefined for layer in layers], dtype=bool)
    return Probe(
        coef=_blanked(blank, fit.coef.numpy()[idx]),
        intercept=_blanked(blank, fit.intercept.numpy()[idx]),
        mean=fit.mean.numpy()[idx],
        std=fit.std.numpy()[idx],
        layers=layers,
        C=np.asarray(C, dtype=np.float64),
        undefined=dict(undefined),
    )


@overload
def _blanked(blank: Bool[np.ndarray, " l"], array: np.ndarray) -> np.ndarray: ...
@overload
def _blanked(blank: Bool[np.ndarray, " l"], array: None) -> None: ...
def _blanked(blank: Bool[np.ndarray, " l"], array: np.ndarray | None) -> np.ndarray | None:
    """A copy of a per-layer array (layer first) with the ``blank`` layers set to NaN."""
    if array is None:
        return None
    out = np.array(array, dtype=np.result_type(array, np.float32))
    out[blank] = np.nan
    return out


def _intervals(
    oof: np.ndarray,
    correct: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    ci: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap CIs of accuracy and AUROC, and the accuracy replicates (for selectivity)."""
    acc_boot = accuracy(correct, weights)
    return (
        percentile_ci(acc_boot, ci),
        percentile_ci(auroc(oof, labels, weights), ci),
        acc_boot,
    )


def _log_loss(decision: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Summed log-loss per layer of decision values ``[l, m]`` against 0/1 labels."""
    return (np.logaddexp(0.0, decision) - labels * decision).sum(1)


def _validate(
    acts: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes, labels and finiteness; return float32 acts, int labels and groups."""
    acts = np.asarray(acts)
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if acts.ndim != 3:
        raise DataError(f"acts has shape {acts.shape}; pass [n_layers, n_examples, d_model]")
    if not acts.shape[1] == len(labels) == len(groups):
        raise DataError(
            f"acts has {acts.shape[1]} examples, labels {len(labels)}, groups {len(groups)}; "
            "pass one label and one group id per example"
        )
    labels = check_labels(labels, acts.shape[1])
    finite = np.isfinite(acts).all(axis=(1, 2))
    if not finite.all():
        raise DataError(
            f"activations contain NaN or inf at layers {np.flatnonzero(~finite).tolist()}; "
            "re-extract those layers or drop the affected examples"
        )
    return np.ascontiguousarray(acts, dtype=np.float32), labels, groups


def _layer_ids(layers: list[int] | None, n_layers: int) -> list[int]:
    """Model layer index per row of ``acts`` (0..L-1 unless given)."""
    if layers is None:
        return list(range(n_layers))
    if len(layers) != n_layers:
        raise DataError(
            f"{len(layers)} layer ids for {n_layers} layers of activations; pass one per layer"
        )
    return [int(x) for x in layers]


def _json_safe(value: np.ndarray) -> object:
    """Nested lists of floats with NaN replaced by None."""
    array = np.asarray(value, dtype=np.float64)
    return np.where(np.isnan(array), None, array).tolist()
