"""Weakening, rotation and drift of a concept between two stages, layer by layer.

Three measures, over the same examples in stage A (the parent) and stage B:

- *still encoded*: a stage's class separation (Cohen's d) along its own difference-of-means
  direction, cross-fitted: each grouped fold's examples are projected on the direction fitted
  on the other folds, so fitting and measuring never share examples. A drop A - B is
  *weakening*; a rise is *strengthening*.
- *parent direction expressed*: B's separation along A's cross-fitted direction. The *rotation
  gap* compares each stage's separation along the other stage's direction with that along its
  own: own = sqrt(d_A|A · d_B|B), cross = sqrt(d_A|B · d_B|A) (d_X|Y: X's examples on Y's
  cross-fitted direction). A direction estimated with error loses the same share of
  separation in both products, so the gap own - cross is ~0 when the direction is unchanged
  (whatever each stage's strength), and large when the concept moved to another direction.
  A gap beyond its floor is *rotation*.
- *same direction*: the cosine of A's and B's full-data directions with a bootstrap interval,
  beside the random-direction band and the shuffled-label null.

Uncertainty: a paired group bootstrap (the same resampled groups in both stages; projections
are fixed, the groups are resampled), percentile CIs at the configured level, one-sided
shifted-bootstrap p-values for a drop and for a rise, Holm across layers, and the bootstrap
distribution of the first significant layer and of the largest drop. Noise floor: the same
measures between a stage and a seed replicate of it (the replicate's drift); a change counts as
found only when it is significant *and* larger than that floor at its layer.

Encoding: given the parent's probe AUROC per layer (`parent_auroc`), a change is judged only at
layers where the parent encodes the concept (`valuetrace.analysis.verdict.parent_encodes`);
elsewhere the verdict is `Verdict.NOT_ENCODED`, nothing is found, and the first and largest
drop skip the layer. Holm still runs over every compared layer, so the p-values of encoded
layers do not depend on how many layers are encoded.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float, Int
from numpy.typing import ArrayLike

from valuetrace import stats
from valuetrace.analysis.measures import MEASURES, Separations
from valuetrace.analysis.similarity import (
    cka_per_layer,
    cosine_per_layer,
    degenerate_layers,
    random_direction_null,
    shuffled_label_null,
)
from valuetrace.analysis.stage_comparison import (
    CosineChange,
    LayerChange,
    LayerEstimate,
    StageComparison,
)
from valuetrace.analysis.verdict import Verdict, parent_encodes
from valuetrace.errors import DataError
from valuetrace.probing.folds import check_fold_classes
from valuetrace.stats import Interval


@dataclass(frozen=True)
class Replicate:
    """A stage and a seed replicate of it, over the same examples: their drift is the floor."""

    name: str
    original: Float[np.ndarray, "l n d"]
    replicate: Float[np.ndarray, "l n d"]


def crossfit_projections(
    acts: Float[np.ndarray, "l n d"],
    labels: Int[np.ndarray, " n"],
    folds: Int[np.ndarray, " n"],
    reference: Float[np.ndarray, "l n d"] | None = None,
) -> Float[np.ndarray, "l n"]:
    """Each example projected on the unit difference-of-means direction of the other folds.

    The direction is fitted on `reference` (default: `acts`; pass another stage's activations
    of the same examples to measure along that stage's direction). Units: activation units.
    NaN at a layer where a fold's class means coincide (no direction).

    Raises:
        DataError: shapes disagree, or a fold's training part lacks a class.
    """
    x = np.asarray(acts)
    ref = x if reference is None else np.asarray(reference)
    y = np.asarray(labels)
    f = np.asarray(folds)
    if x.ndim != 3 or ref.shape != x.shape or y.shape != (x.shape[1],) or f.shape != y.shape:
        raise DataError(
            f"acts {x.shape}, reference {ref.shape}, {y.shape} labels and {f.shape} folds "
            "disagree; pass [n_layers, n_examples, d_model] arrays of the same examples."
        )
    check_fold_classes(f, y)
    out = np.full(x.shape[:2], np.nan)
    for fold in np.unique(f):
        test = f == fold
        train = ~test
        diff = ref[:, train & (y == 1)].mean(1, dtype=np.float64) - ref[:, train & (y == 0)].mean(
            1, dtype=np.float64
        )
        norm = np.linalg.norm(diff, axis=1)
        ok = norm > 0
        unit = diff[ok] / norm[ok, None]
        out[np.ix_(ok, test)] = np.einsum("lnd,ld->ln", x[ok][:, test], unit)
    return out


def _layer_estimate(observed: int | None, boot: np.ndarray, ci: float) -> LayerEstimate:
    """Summarise bootstrap layer picks boot [B] (-1 = none) around the observed pick."""
    found = boot[boot >= 0]
    if found.size == 0:
        return LayerEstimate(observed, None, None, None, 0.0, 0.0)
    lo, hi = stats.percentile_ci(found[:, None].astype(np.float64), ci)[0]
    counts = np.bincount(found)
    return LayerEstimate(
        observed,
        int(np.floor(lo)),
        int(np.ceil(hi)),
        int(counts.argmax()),
        float(counts.max() / boot.size),
        float(found.size / boot.size),
    )


def _first(found: np.ndarray) -> np.ndarray:
    """Index of the first True along the last axis, -1 where none."""
    return np.where(found.any(-1), found.argmax(-1), -1)


def _change(
    a: Float[np.ndarray, "b1 l"],
    b: Float[np.ndarray, "b1 l"],
    floor: Float[np.ndarray, " l"] | None,
    judged: np.ndarray,
    alpha: float,
    ci: float,
) -> LayerChange:
    """Drop a - b per layer (row 0 observed, rows 1: bootstrap) with CI, tests and floor;
    found, first and largest only at `judged` layers [l] (bool: the parent encodes the concept)."""
    drop = a[0] - b[0]
    boot = a[1:] - b[1:]
    lo, hi = stats.percentile_ci(boot, ci).T if boot.size else (drop, drop)
    p_drop = stats.holm(stats.shifted_bootstrap_p(drop, boot, drop))
    p_rise = stats.holm(stats.shifted_bootstrap_p(-drop, -boot, -drop))
    above = np.ones_like(drop, dtype=bool) if floor is None else np.abs(drop) > floor
    with np.errstate(invalid="ignore"):
        drop_found = (p_drop <= alpha) & (drop > 0) & above & judged
        rise_found = (p_rise <= alpha) & (drop < 0) & above & judged
        boot_above = True if floor is None else boot > floor
        sig_boot = (stats.holm(stats.shifted_bootstrap_p(boot, boot, drop)) <= alpha) & boot_above
    sig_boot &= judged
    candidates = np.isfinite(drop) & judged
    largest = int(np.nanargmax(np.where(candidates, drop, np.nan))) if candidates.any() else None
    filled = np.where(np.isnan(boot) | ~judged, -np.inf, boot)
    picks = np.where(np.isfinite(filled).any(1), filled.argmax(1), -1)
    first = int(_first(drop_found)) if drop_found.any() else None
    return LayerChange(
        a=a[0].tolist(),
        b=b[0].tolist(),
        drop=drop.tolist(),
        lo=np.asarray(lo).tolist(),
        hi=np.asarray(hi).tolist(),
        p_drop=p_drop.tolist(),
        p_rise=p_rise.tolist(),
        floor=None if floor is None else floor.tolist(),
        drop_found=drop_found.tolist(),
        rise_found=rise_found.tolist(),
        first_drop=_layer_estimate(first, _first(sig_boot), ci),
        largest_drop=_layer_estimate(largest, picks, ci),
    )


def _mean_directions(
    acts: Float[np.ndarray, "l n d"], y: np.ndarray, w: Float[np.ndarray, "b n"]
) -> Float[np.ndarray, "l b d"]:
    """Difference of weighted class means per layer and bootstrap replicate."""
    pos, neg = w * (y == 1), w * (y == 0)
    pos = pos / pos.sum(1, keepdims=True)
    neg = neg / neg.sum(1, keepdims=True)
    x = np.asarray(acts, dtype=np.float64)
    return np.stack([(pos - neg) @ x[layer] for layer in range(x.shape[0])])


def _cosines(dir_a: np.ndarray, dir_b: np.ndarray) -> np.ndarray:
    """Cosine per layer and replicate of [l, b, d] direction stacks → [b, l] (NaN if zero)."""
    l_, b_, d_ = dir_a.shape
    cos = cosine_per_layer(dir_a.reshape(-1, d_), dir_b.reshape(-1, d_))
    return cos.reshape(l_, b_).T


def _separations(
    x: np.ndarray, other: np.ndarray, y: np.ndarray, folds: np.ndarray, w: np.ndarray
) -> Separations:
    """Cohen's d [b, l] of two stages' examples along their own and each other's cross-fitted
    directions (see `Separations`)."""
    return Separations(
        xx=stats.cohens_d(crossfit_projections(x, y, folds), y, w),
        yy=stats.cohens_d(crossfit_projections(other, y, folds), y, w),
        xy=stats.cohens_d(crossfit_projections(x, y, folds, reference=other), y, w),
        yx=stats.cohens_d(crossfit_projections(other, y, folds, reference=x), y, w),
    )


def compare_stages(
    acts_a: Float[np.ndarray, "l n d"],
    acts_b: Float[np.ndarray, "l n d"],
    labels: Int[np.ndarray, " n"],
    groups: ArrayLike,
    folds: Int[np.ndarray, " n"],
    *,
    stage_a: str = "A",
    stage_b: str = "B",
    layers: Sequence[int] | None = None,
    replicates: Sequence[Replicate] = (),
    n_boot: int = 1000,
    alpha: float = 0.05,
    ci: float = 0.95,
    seed: int = 0,
    n_shuffles: int = 100,
    parent_auroc: Sequence[Interval] | None = None,
) -> tuple[StageComparison, Float[np.ndarray, "b l"]]:
    """Weakening, rotation and direction change of one concept from stage A to stage B.

    acts_*: both stages' activations of the same examples ([n_layers, n_examples, d_model]);
    folds: grouped fold ids (pairs kept together) for the cross-fitting; replicates: a stage
    and its seed replicate(s) for the noise floor; parent_auroc: stage A's probe's held-out
    AUROC per layer with its interval (`valuetrace.analysis.verdict.held_out_auroc`): layers
    where A does not encode the concept (`parent_encodes`) get `Verdict.NOT_ENCODED` and no
    found change; None judges every layer. Returns the comparison and the bootstrap samples
    [n_boot, n_layers] of the relative drop (for paired concentration indices).

    Raises:
        DataError: shapes, labels or groups disagree, the CI level or alpha is outside (0, 1),
            n_boot is too small for Holm over the layers, too few groups hold each class, or
            parent_auroc does not give one interval per layer.
    """
    a = np.asarray(acts_a)
    b = np.asarray(acts_b)
    if a.ndim != 3 or a.shape != b.shape:
        raise DataError(
            f"acts_a {a.shape} and acts_b {b.shape} must share one shape [n_layers, n_examples, "
            "d_model] over the same examples; compare checkpoints of one architecture."
        )
    n_layers, n_examples, d_model = a.shape
    y, codes = stats.check_labels_groups(labels, groups, n_examples)
    if not (0 < alpha < 1 and 0 < ci < 1):
        raise DataError(f"alpha and ci must lie in (0, 1); got alpha={alpha}, ci={ci}.")
    if (n_boot + 1) * alpha < n_layers:
        raise DataError(
            f"n_boot={n_boot} cannot give p below {1 / (n_boot + 1):.2g}, but Holm over "
            f"{n_layers} layers needs p <= {alpha / n_layers:.2g}; raise probing.n_bootstrap to "
            f"at least {int(np.ceil(n_layers / alpha)) - 1}."
        )
    if n_examples < 4:
        raise DataError("compare_stages needs at least 4 examples (debiased CKA, Cohen's d).")
    if parent_auroc is not None and len(parent_auroc) != n_layers:
        raise DataError(
            f"parent_auroc gives {len(parent_auroc)} intervals for {n_layers} layers; pass the "
            "parent's probe results of the same cache (held_out_auroc(results))."
        )
    judged = np.array(
        [True] * n_layers if parent_auroc is None else [parent_encodes(x) for x in parent_auroc]
    )
    w = stats.group_bootstrap_weights(codes, n_boot, seed)
    valid = ((w * y).sum(1) > 0) & ((w * (1 - y)).sum(1) > 0) & (w.sum(1) > 2)
    if valid.mean() < 0.9:
        raise DataError(
            f"{(~valid).mean():.0%} of group resamples miss a class; too few groups contain each "
            "class — use more groups (e.g. contrastive pairs, each holding both classes)."
        )
    w = np.vstack([np.ones((1, n_examples)), w[valid]])
    f = np.asarray(folds)

    sep = _separations(a, b, y, f, w)
    dirs_a, dirs_b = _mean_directions(a, y, w), _mean_directions(b, y, w)
    cos = _cosines(dirs_a, dirs_b)

    floors: dict[str, np.ndarray] | None = None
    if replicates:
        ones = np.ones((1, n_examples))
        drift = []
        for rep in replicates:
            x, r = np.asarray(rep.original), np.asarray(rep.replicate)
            rs = _separations(x, r, y, f, ones)
            drift.append(
                {
                    **{m.name: np.abs(m.a(rs)[0] - m.b(rs)[0]) for m in MEASURES},
                    "cosine": -_cosines(_mean_directions(x, y, ones), _mean_directions(r, y, ones))[
                        0
                    ],
                }
            )
        with warnings.catch_warnings(), np.errstate(invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (degenerate) layers
            floors = {k: np.nanmax([d[k] for d in drift], axis=0) for k in drift[0]}
        floors["cosine"] = -floors["cosine"]  # the lowest replicate cosine

    def floor(key: str) -> np.ndarray | None:
        return None if floors is None else floors[key]

    changes = {
        m.name: _change(m.a(sep), m.b(sep), floor(m.name), judged, alpha, ci) for m in MEASURES
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = (sep.xx - sep.yy) / sep.xx
    rel = np.where(sep.xx[:1] > 0, rel, np.nan)
    rel_ci = stats.percentile_ci(rel[1:], ci)
    cos_ci = stats.percentile_ci(cos[1:], ci)
    band = random_direction_null(d_model, seed=seed, ci=ci)
    shuffled = shuffled_label_null(b, y, codes, dirs_a[:, 0], n_shuffles=n_shuffles, seed=seed)
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (degenerate) layers
        shuffled_q = np.nanquantile(np.abs(shuffled), ci, axis=0)
        cos_floor_arr = floor("cosine")
        below = (
            np.zeros(n_layers, dtype=bool)
            if cos_floor_arr is None
            else cos_ci[:, 1] < cos_floor_arr
        )
    reasons: list[tuple[int, str]] = [
        (i, f"{stage}: {reason}")
        for stage, x in ((stage_a, a), (stage_b, b))
        for i, reason in degenerate_layers(x, y).items()
    ]
    if floors is not None:  # a NaN floor would silently read as "no change beyond the floor"
        finite = np.all([np.isfinite(v) for v in floors.values()], axis=0)
        no_floor = "no noise floor: the seed replicates' drift is undefined (a degenerate layer)"
        reasons += [(int(i), no_floor) for i in np.flatnonzero(~finite)]
    undefined: dict[int, str] = {}
    for i, text in reasons:
        undefined[i] = f"{undefined[i]}; {text}" if i in undefined else text
    comparison = StageComparison(
        stage_a=stage_a,
        stage_b=stage_b,
        layers=list(range(n_layers)) if layers is None else [int(v) for v in layers],
        **changes,
        relative=rel[0].tolist(),
        relative_lo=rel_ci[:, 0].tolist(),
        relative_hi=rel_ci[:, 1].tolist(),
        cosine=CosineChange(
            value=cos[0].tolist(),
            lo=cos_ci[:, 0].tolist(),
            hi=cos_ci[:, 1].tolist(),
            random_band=[band[0], band[1]],
            shuffled=shuffled_q.tolist(),
            floor=None if cos_floor_arr is None else cos_floor_arr.tolist(),
            below_floor=below.tolist(),
        ),
        cka=cka_per_layer(a, b, debiased=True).tolist(),
        verdicts=layer_verdicts(changes["encoded"], changes["rotation"], undefined, judged),
        undefined=undefined,
        replicates=[r.name for r in replicates],
        alpha=alpha,
        ci=ci,
        n_boot=int(valid.sum()),
        n_groups=int(codes.max()) + 1,
        parent_auroc=None if parent_auroc is None else list(parent_auroc),
    )
    return comparison, rel[1:]


def layer_verdicts(
    encoded: LayerChange,
    rotation: LayerChange,
    undefined: dict[int, str],
    judged: Sequence[bool],
) -> list[Verdict]:
    """Per layer: weakening / strengthening / no meaningful change, each with or without
    rotation (the rotation gap rose beyond its floor); undefined where a stage's layer is
    degenerate or the separation is not finite; not encoded in the parent where `judged[i]` is
    False (`valuetrace.analysis.verdict.parent_encodes`)."""
    return [
        Verdict.UNDEFINED
        if i in undefined or not np.isfinite(encoded.drop[i])
        else Verdict.NOT_ENCODED
        if not judged[i]
        else Verdict.of(down, up, rotated)
        for i, (down, up, rotated) in enumerate(
            zip(encoded.drop_found, encoded.rise_found, rotation.drop_found, strict=True)
        )
    ]
