"""Per-layer statistics: AUROC, group bootstrap, percentile intervals, paired permutation test.

Why: examples inside a contrastive group are not independent, so uncertainty comes from
resampling whole groups, and comparisons between stages swap whole groups. Everything is
vectorised over layers (and bootstrap replicates) because a run has tens of layers.

A bootstrap replicate is stored as example weights: the number of times each example's group
was drawn. Weighting by these counts is the same as gathering the examples of the resampled
groups, without building the gathered arrays.
"""

import numpy as np
from jaxtyping import Bool, Float, Int, Shaped

from valuetrace.errors import DataError

_CHUNK_ELEMENTS = 4_000_000


def group_bootstrap_weights(
    groups: Shaped[np.ndarray, " n"], n_boot: int, seed: int
) -> Float[np.ndarray, "b n"]:
    """Multiplicity of each example in ``n_boot`` resamples of whole groups (with replacement)."""
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    return counts[:, inverse].astype(np.float64)


def accuracy(
    correct: Bool[np.ndarray, "l n"], weights: Float[np.ndarray, "b n"] | None = None
) -> Float[np.ndarray, "..."]:
    """Accuracy per layer ``[l]``, or per replicate and layer ``[b, l]`` under example weights."""
    if weights is None:
        return correct.mean(1)
    return (weights @ correct.T.astype(np.float64)) / weights.sum(1, keepdims=True)


def auroc(
    scores: Float[np.ndarray, "l n"],
    labels: Int[np.ndarray, " n"],
    weights: Float[np.ndarray, "b n"] | None = None,
) -> Float[np.ndarray, "..."]:
    """Rank AUROC (ties count half) per layer ``[l]``, or ``[b, l]`` under example weights.

    A replicate without both classes gets NaN.
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
    """Percentile interval over the replicate axis, ignoring NaN replicates."""
    if not 0.0 < ci < 1.0:
        raise DataError(f"ci is {ci}; pass a level between 0 and 1, e.g. 0.95")
    tail = 100.0 * (1.0 - ci) / 2.0
    lo, hi = np.nanpercentile(samples, [tail, 100.0 - tail], axis=0)
    return np.stack([lo, hi], axis=-1)


def permutation_test_layers(
    scores_a: Float[np.ndarray, "l n"],
    scores_b: Float[np.ndarray, "l n"],
    labels: Int[np.ndarray, " n"],
    groups: Shaped[np.ndarray, " n"],
    n_perm: int,
    seed: int,
) -> Float[np.ndarray, " l"]:
    """One-sided p-value per layer that A's decision scores are more accurate than B's.

    Paired test on the same examples: under the null, A and B are exchangeable within each
    group, so each permutation swaps A and B for a random half of the groups (a sign flip of
    that group's accuracy difference). ``p = (1 + #{T_perm >= T}) / (1 + n_perm)``.
    """
    scores_a, scores_b = np.asarray(scores_a), np.asarray(scores_b)
    labels = np.asarray(labels)
    if scores_a.shape != scores_b.shape or len({scores_a.shape[-1], len(labels), len(groups)}) > 1:
        raise DataError(
            f"scores_a {scores_a.shape}, scores_b {scores_b.shape}, {len(labels)} labels and "
            f"{len(groups)} groups do not line up; pass [layers, n] scores for the same n examples"
        )
    diff = ((scores_a > 0) == (labels == 1)).astype(np.float64) - ((scores_b > 0) == (labels == 1))
    _, inverse = np.unique(groups, return_inverse=True)
    per_group = np.zeros((diff.shape[0], int(inverse.max()) + 1))
    np.add.at(per_group.T, inverse, diff.T)
    observed = per_group.sum(1)
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_perm, per_group.shape[1]))
    permuted = signs @ per_group.T  # [n_perm, l]
    exceed = (permuted >= observed - 1e-9).sum(0)
    return (1.0 + exceed) / (1.0 + n_perm)
