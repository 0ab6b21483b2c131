"""The statistics of valuetrace, in one place: label checks, AUROC and accuracy, the group
bootstrap, percentile intervals, bootstrap p-values and Holm's correction.

Why: examples inside a contrastive group are not independent, so uncertainty comes from
resampling whole groups (the cluster bootstrap; Efron & Tibshirani 1993, ch. 6 and 8; Field &
Welsh 2007). Everything is vectorised over layers (and bootstrap replicates) because a run has
tens of layers; probing and analysis both use these functions, so an interval means the same
thing wherever it is reported.

A bootstrap replicate is stored as example weights: the number of times each example's group
was drawn. Weighting by these counts is the same as gathering the examples of the resampled
groups, without building the gathered arrays. Shapes: ``l`` layers, ``n`` examples, ``b``
bootstrap replicates.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float, Int, Shaped
from numpy.typing import ArrayLike

from valuetrace.errors import DataError

_CHUNK_ELEMENTS = 4_000_000
_TIE = 1e-5  # relative: float32 activations carry ~1e-7 rounding, sums of them more


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval (same units as the estimate).

    The one value-with-CI type every record uses (behaviour, causal, findings).
    """

    value: float
    lo: float
    hi: float

    def covers_zero(self) -> bool:
        """True when the interval includes 0 (or is undefined)."""
        return not (self.lo > 0 or self.hi < 0)


def group_bootstrap_weights(
    groups: Shaped[np.ndarray, " n"], n_boot: int, seed: int
) -> Float[np.ndarray, "b n"]:
    """Multiplicity of each example in ``n_boot`` resamples of whole groups (with replacement).

    Each replicate draws as many groups as there are, uniformly with replacement, and every
    example counts as often as its group was drawn (row sums vary with group sizes). Pass
    ``np.arange(n)`` as ``groups`` for the ordinary bootstrap of independent items.
    Method: the cluster (block) bootstrap, Efron & Tibshirani (1993), *An Introduction to the
    Bootstrap*; Field & Welsh (2007), JRSS B 69(3).

    Raises:
        DataError: ``groups`` is empty or ``n_boot`` < 1.
    """
    groups = np.asarray(groups)
    if groups.size == 0 or n_boot < 1:
        raise DataError(
            f"group bootstrap of {groups.size} examples with n_boot={n_boot}; pass at least one "
            "example and n_boot >= 1 (e.g. 1000)."
        )
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    return counts[:, inverse].astype(np.float64)


def bootstrap_means(
    values: Float[np.ndarray, "... n"], n_boot: int, seed: int
) -> Float[np.ndarray, "b ..."]:
    """Means over the last (item) axis in ``n_boot`` resamples of items with replacement.

    Every leading row is resampled with the same item indices, so rows that hold paired
    measurements of the same items (a margin per stage, per steering strength) stay paired.
    Percentile bootstrap (Efron & Tibshirani 1993); pair with `percentile_ci`.

    Raises:
        DataError: there are no items.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[-1] if values.ndim else 0
    if n == 0:
        raise DataError("no items to resample; the eval set is empty, check its file.")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)  # [b, n]
    return np.moveaxis(values @ counts.T / n, -1, 0)


def pearson_r(x: Float[np.ndarray, "k n"], y: Float[np.ndarray, " n"]) -> Float[np.ndarray, " k"]:
    """Pearson correlation of each row of ``x`` with ``y`` (NaN for a constant row)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xc = x - x.mean(-1, keepdims=True)
    yc = y - y.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc @ yc) / (np.linalg.norm(xc, axis=-1) * np.linalg.norm(yc))


def accuracy(
    correct: Bool[np.ndarray, "l n"], weights: Float[np.ndarray, "b n"] | None = None
) -> Float[np.ndarray, "..."]:
    """Accuracy per layer ``[l]``, or per replicate and layer ``[b, l]`` under example weights.

    ``correct[l, i]`` says whether example ``i`` was classified correctly at layer ``l``; the
    weighted accuracy is the weighted mean of those, a fraction in [0, 1].
    """
    if weights is None:
        return correct.mean(1)
    return (weights @ correct.T.astype(np.float64)) / weights.sum(1, keepdims=True)


def auroc(
    scores: Float[np.ndarray, "l n"],
    labels: Int[np.ndarray, " n"],
    weights: Float[np.ndarray, "b n"] | None = None,
) -> Float[np.ndarray, "..."]:
    """Rank AUROC (ties count half) per layer ``[l]``, or ``[b, l]`` under example weights.

    The probability that a random label-1 example scores above a random label-0 one: the
    Mann-Whitney U statistic over n1·n0 (Hanley & McNeil 1982, Radiology 143(1)), with each
    example counted as often as its weight (equal to scikit-learn's ``roc_auc_score`` with
    ``sample_weight``). Computed from one sort per layer, shared by all replicates. A replicate
    without both classes gets NaN. ``labels`` are 0/1 (check them with `check_labels`).
    """
    scores = np.asarray(scores, dtype=np.float64)
    single = weights is None
    w = np.ones((1, scores.shape[1])) if weights is None else np.asarray(weights, np.float64)
    order = np.argsort(scores, axis=1, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=1)
    positive = np.asarray(labels)[order] == 1  # [l, n]
    # Index of the first and last member of each position's tie block, per layer.
    n = scores.shape[1]
    new_block = np.ones_like(ranked, dtype=bool)
    new_block[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    first = np.maximum.accumulate(np.where(new_block, np.arange(n), 0), axis=1)
    ends_block = np.ones_like(new_block)
    ends_block[:, :-1] = new_block[:, 1:]
    last = np.minimum.accumulate(np.where(ends_block, np.arange(n), n - 1)[:, ::-1], axis=1)[
        :, ::-1
    ]
    chunk = max(1, _CHUNK_ELEMENTS // scores.size)
    out = np.empty((w.shape[0], scores.shape[0]))
    for start in range(0, w.shape[0], chunk):
        ws = w[start : start + chunk][:, order]  # [b, l, n] in each layer's sorted order
        pos_w = ws * positive
        neg_w = ws - pos_w
        cum_neg = np.cumsum(neg_w, axis=2)
        below = np.take_along_axis(cum_neg - neg_w, first[None], axis=2)
        through = np.take_along_axis(cum_neg, last[None], axis=2)
        tied_and_below = 0.5 * (below + through)
        total_pos = pos_w.sum(2)
        total_neg = neg_w.sum(2)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = (pos_w * tied_and_below).sum(2) / (total_pos * total_neg)
        out[start : start + chunk] = np.where((total_pos > 0) & (total_neg > 0), value, np.nan)
    return out[0] if single else out


def percentile_ci(samples: Float[np.ndarray, "b ..."], ci: float) -> Float[np.ndarray, "... 2"]:
    """Central percentile interval ``[..., (lo, hi)]`` over the replicate axis, ignoring NaN.

    The ``(1 - ci) / 2`` and ``(1 + ci) / 2`` quantiles (linear interpolation) of bootstrap or
    Monte Carlo replicates ``samples[b, ...]``: the percentile interval of Efron & Tibshirani
    (1993), ch. 13. A 1-D ``samples`` gives one ``(lo, hi)`` pair.

    Raises:
        DataError: ``ci`` is not strictly between 0 and 1.
    """
    if not 0.0 < ci < 1.0:
        raise DataError(f"ci is {ci}; pass a level between 0 and 1, e.g. 0.95")
    tail = 100.0 * (1.0 - ci) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN (undefined) column gives NaN
        lo, hi = np.nanpercentile(samples, [tail, 100.0 - tail], axis=0)
    return np.stack([lo, hi], axis=-1)


def check_labels(labels: ArrayLike, n_examples: int) -> Int[np.ndarray, " n"]:
    """Validate 0/1 labels (1 = the concept present) holding both classes; return them as int64.

    Raises:
        DataError: ``labels`` does not have shape ``(n_examples,)``, holds a value other than
            0 or 1, or holds one class only.
    """
    y = np.asarray(labels)
    if y.shape != (n_examples,):
        raise DataError(
            f"labels have shape {y.shape} for {n_examples} examples; pass one label per example."
        )
    values = np.unique(y)
    if not np.isin(values, (0, 1)).all():
        raise DataError(
            f"labels must be 0/1 (1 = compassionate), got values {values.tolist()[:10]}; map "
            "them to 0/1."
        )
    if len(values) < 2:
        raise DataError(
            f"labels hold only class {values.tolist()}; both classes (0 and 1) are needed."
        )
    return y.astype(np.int64)


def check_labels_groups(
    labels: ArrayLike, groups: ArrayLike, n_examples: int
) -> tuple[Int[np.ndarray, " n"], Int[np.ndarray, " n"]]:
    """Validate labels (`check_labels`) and per-example group ids; return labels, group codes.

    Group codes number the distinct group ids 0 .. G-1 in sorted order.

    Raises:
        DataError: the labels fail `check_labels`, ``groups`` does not have shape
            ``(n_examples,)``, or there is a single group (nothing to resample or shuffle).
    """
    y = check_labels(labels, n_examples)
    g = np.asarray(groups)
    if g.shape != (n_examples,):
        raise DataError(
            f"groups have shape {g.shape} for {n_examples} examples; pass one group id per "
            "example (e.g. the contrastive pair id)."
        )
    codes = np.unique(g, return_inverse=True)[1].reshape(-1)
    if codes.max() < 1:
        raise DataError(
            "groups contain a single group; at least 2 groups are needed to resample or shuffle "
            "(use contrastive pair ids, or np.arange(n) when examples are unpaired)."
        )
    return y, codes.astype(np.int64)


def shifted_bootstrap_p(
    values: Float[np.ndarray, "... l"],
    boot: Float[np.ndarray, "b l"],
    observed: Float[np.ndarray, " l"],
) -> Float[np.ndarray, "... l"]:
    """One-sided bootstrap p-value of "the statistic is > 0" for each value, per layer.

    The null distribution is the bootstrap distribution shifted to mean zero,
    ``boot - observed`` (Hall & Wilson 1991, Biometrics 47(2), "Two guidelines for bootstrap
    hypothesis testing"); ``p = (1 + #{null >= value}) / (1 + b)``, so p is never 0; values
    within float32 rounding (relative 1e-5) of each other count as ties, so two identical stages
    give p = 1, not a spurious drop. NaN where the layer's statistic is undefined. Pass
    ``values = observed`` for the observed statistic's p, or the replicates themselves to test
    each replicate against the same null.

    Raises:
        DataError: the shapes do not share the layer axis.
    """
    values = np.asarray(values, dtype=np.float64)
    boot = np.asarray(boot, dtype=np.float64)
    observed = np.asarray(observed, dtype=np.float64)
    if boot.ndim != 2 or observed.shape != boot.shape[1:] or values.shape[-1:] != observed.shape:
        raise DataError(
            f"values {values.shape}, boot {boot.shape} and observed {observed.shape} do not "
            "share the layer axis; pass boot [b, l], observed [l] and values [..., l]."
        )
    n_boot = boot.shape[0]
    out = np.full(values.shape, np.nan)
    for layer in range(boot.shape[1]):
        column = boot[:, layer]
        finite = np.isfinite(column)
        if not np.isfinite(observed[layer]) or not finite.any():
            continue  # undefined at this layer: p stays NaN
        null = np.sort(column[finite] - observed[layer])
        tol = _TIE * (1.0 + np.abs(column[finite]).max())  # float rounding of identical values
        n_ge = null.size - np.searchsorted(null, values[..., layer] - tol, side="left")
        out[..., layer] = (1 + n_ge) / (n_boot + 1)
    return out


def holm(p: Float[np.ndarray, "... l"]) -> Float[np.ndarray, "... l"]:
    """Holm step-down adjusted p-values along the last axis; NaN entries stay NaN.

    Sorted ascending, the k-th smallest of m p-values is multiplied by (m - k + 1), made
    monotone with a running maximum and capped at 1; NaN entries are not counted as tests.
    Rejecting where the adjusted p <= alpha controls the family-wise error rate at alpha
    (Holm 1979, Scand. J. Statist. 6(2)).
    """
    p = np.asarray(p, dtype=np.float64)
    missing = np.isnan(p)
    m = (~missing).sum(-1, keepdims=True)
    order = np.argsort(np.where(missing, np.inf, p), axis=-1)
    ranked = np.take_along_axis(np.where(missing, np.inf, p), order, axis=-1)
    factor = np.maximum(m - np.arange(p.shape[-1]), 1)
    adjusted = np.minimum(np.maximum.accumulate(ranked * factor, axis=-1), 1.0)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return np.where(missing, np.nan, out)


def auroc_gain(
    scores: Float[np.ndarray, "l n"],
    reference: Float[np.ndarray, "k n"],
    labels: Int[np.ndarray, " n"],
    weights: Float[np.ndarray, "b n"] | None,
    ci: float,
) -> tuple[Float[np.ndarray, " l"], Float[np.ndarray, "l 2"]]:
    """AUROC of each row of ``scores`` minus the best ``reference`` row's, with a paired CI.

    Both are scored on the same examples; each bootstrap replicate (example weights from
    `group_bootstrap_weights`) rescores both sides and takes the best reference inside the
    replicate, so picking the best reference is part of the uncertainty. Without ``weights``
    the interval is NaN. Returns the gain ``[l]`` and its percentile interval ``[l, 2]``.

    Raises:
        DataError: the score arrays do not cover the same examples, or ``ci`` is outside (0, 1).
    """
    scores, reference = np.atleast_2d(scores), np.atleast_2d(reference)
    if scores.shape[1] != reference.shape[1] or scores.shape[1] != len(labels):
        raise DataError(
            f"scores {scores.shape}, reference {reference.shape} and {len(labels)} labels do not "
            "line up; pass scores of the same examples"
        )
    both = np.concatenate([scores, reference])
    point = auroc(both, labels)
    gain = point[: len(scores)] - np.nanmax(point[len(scores) :])
    if not 0.0 < ci < 1.0:
        raise DataError(f"ci is {ci}; pass a level between 0 and 1, e.g. 0.95")
    if weights is None:
        return gain, np.full((len(scores), 2), np.nan)
    boot = auroc(both, labels, weights)  # [b, l + k]
    best_ref = np.nanmax(boot[:, len(scores) :], axis=1, keepdims=True)
    return gain, percentile_ci(boot[:, : len(scores)] - best_ref, ci)


def cohens_d(
    proj: Float[np.ndarray, "l n"],
    labels: Int[np.ndarray, " n"],
    weights: Float[np.ndarray, "b n"] | None = None,
) -> Float[np.ndarray, "..."]:
    """Cohen's d (class-1 mean minus class-0 mean over the pooled SD; Cohen 1988) per layer
    ``[l]``, or per replicate and layer ``[b, l]`` under example weights.

    Unitless; > 0 means the classes are apart in the expected direction. NaN where it is
    undefined: a replicate without both classes, a layer with zero pooled variance, or a layer
    whose projections are NaN.
    """
    x = np.asarray(proj, dtype=np.float64)
    y = np.asarray(labels)
    single = weights is None
    w = np.ones((1, x.shape[1])) if weights is None else np.asarray(weights, np.float64)
    finite = np.isfinite(x).any(1, keepdims=True)
    centre = np.nanmean(np.where(finite, x, 0.0), axis=1, keepdims=True) if x.size else 0.0
    x = x - centre
    parts = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for cls_w in (w * (y == 1), w * (y == 0)):
            n = cls_w.sum(1)[:, None]
            mean = cls_w @ x.T / n
            parts.append((n, mean, cls_w @ (x**2).T - n * mean**2))
        (n1, m1, ss1), (n0, m0, ss0) = parts
        pooled = np.sqrt(np.maximum(ss1 + ss0, 0.0) / (n1 + n0 - 2))
        d = (m1 - m0) / pooled
    scale = np.abs(m1) + np.abs(m0) + 1e-300
    d = np.where((pooled > 1e-12 * scale) & (n1 > 0) & (n0 > 0), d, np.nan)
    return d[0] if single else d


def _paired(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Two equal-length float64 vectors of at least 3 values, for a correlation.

    Raises:
        DataError: fewer than 3 pairs, or ``x`` and ``y`` differ in length.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise DataError(
            f"a correlation needs two equal-length lists of at least 3 values, got "
            f"{x.shape} and {y.shape}; give more paired items."
        )
    return x, y


def _row_r(x: Float[np.ndarray, "b n"], y: Float[np.ndarray, "b n"]) -> Float[np.ndarray, " b"]:
    """Pearson r of each row of ``x`` with the same row of ``y`` (NaN for a constant row)."""
    x = x - x.mean(1, keepdims=True)
    y = y - y.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(1) / np.sqrt((x**2).sum(1) * (y**2).sum(1))


def _resampled(n: int, n_boot: int, seed: int) -> Int[np.ndarray, "b n"]:
    """Item indices of ``n_boot`` resamples of ``n`` pairs with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def pearson_ci(x: ArrayLike, y: ArrayLike, n_boot: int, seed: int, ci: float) -> Interval:
    """Pearson correlation of ``x`` and ``y`` with a percentile item-bootstrap interval.

    Each bootstrap replicate resamples the pairs with replacement (Efron & Tibshirani 1993);
    a replicate in which either side is constant is undefined and ignored by `percentile_ci`.
    The estimate is NaN when either side is constant.

    Raises:
        DataError: fewer than 3 pairs, or ``x`` and ``y`` differ in length.
    """
    x, y = _paired(x, y)
    r = float(pearson_r(x[None], y)[0])
    idx = _resampled(len(x), n_boot, seed)
    lo, hi = percentile_ci(_row_r(x[idx], y[idx]), ci)
    return Interval(r, float(lo), float(hi))


def spearman_ci(
    x: Float[np.ndarray, " n"], y: Float[np.ndarray, " n"], n_boot: int, seed: int, ci: float
) -> Interval:
    """Spearman rank correlation of ``x`` and ``y`` with a percentile item-bootstrap interval.

    Spearman's rho is Pearson's r of the ranks (ties get their average rank; Spearman 1904).
    Each bootstrap replicate resamples the pairs and ranks them again; a replicate whose ranks
    are constant is undefined and ignored by `percentile_ci`.

    Raises:
        DataError: fewer than 3 pairs, or ``x`` and ``y`` differ in length.
    """
    from scipy.stats import rankdata

    x, y = _paired(x, y)
    rho = float(pearson_r(rankdata(x)[None], rankdata(y))[0])
    idx = _resampled(len(x), n_boot, seed)
    lo, hi = percentile_ci(_row_r(rankdata(x[idx], axis=1), rankdata(y[idx], axis=1)), ci)
    return Interval(rho, float(lo), float(hi))
