"""Localise, layer by layer and with statistics, where compassion weakened from stage A to B.

Inputs are per-example arrays over the same examples in both stages. Every statistic is
recomputed on paired group-bootstrap resamples (the same resampled groups for both stages):
percentile CIs for each drop, one-sided shifted-bootstrap p-values for "drop > 0", Holm across
layers, and the bootstrap distribution of the first significant layer and of the largest drop.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from jaxtyping import Float, Int
from numpy.typing import ArrayLike
from valuetrace.analysis.similarity import check_labels_groups

from valuetrace.errors import DataError

Metric = Literal["auroc", "separation"]
_WeightedMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
_METRIC_TEXT = {"auroc": "probe AUROC", "separation": "class separation (Cohen's d)"}


@dataclass(frozen=True)
class LayerEstimate:
    """A layer index with its bootstrap distribution: percentile interval and modal layer."""

    layer: int | None  # on the observed data; None when no layer qualifies
    lo: int | None  # percentile interval over resamples where a layer qualifies
    hi: int | None
    mode: int | None  # most frequent layer over resamples
    mode_freq: float  # share of all resamples that picked `mode`
    found_freq: float  # share of resamples where any layer qualifies


@dataclass(frozen=True)
class LayerDrops:
    """Per-layer values of one metric in both stages, the drop A - B, its CI and test."""

    a: list[float]
    b: list[float]
    drop: list[float]
    lo: list[float]
    hi: list[float]
    p: list[float]  # one-sided, "drop > 0"
    p_holm: list[float]
    significant: list[bool]
    first_significant: LayerEstimate
    largest_drop: LayerEstimate


@dataclass(frozen=True)
class Localization:
    """Where compassion weakened between two stages: both metrics per layer, plus the verdict."""

    stage_a: str
    stage_b: str
    metric: Metric  # the metric the verdict (significant, first/largest layer) is about
    auroc: LayerDrops
    separation: LayerDrops
    alpha: float
    ci: float
    n_boot: int  # resamples used (those holding both classes)
    n_groups: int
    cos_ab: list[float] | None
    cos_null: tuple[float, float] | None

    @property
    def primary(self) -> LayerDrops:
        """The drops of the chosen metric."""
        return self.auroc if self.metric == "auroc" else self.separation

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field (plain floats, ints, bools, lists, None)."""
        return asdict(self)

    def summary(self) -> str:
        """One plain-language sentence: where the chosen metric dropped, and how sure we are."""
        m = self.primary
        what = _METRIC_TEXT[self.metric]
        big = int(np.argmax(m.drop))
        pct = round(100 * self.ci)
        largest = (
            f"the largest drop is at layer {big} ({m.a[big]:.2f} → {m.b[big]:.2f}, "
            f"Δ {m.drop[big]:.3f}, {pct}% CI [{m.lo[big]:.3f}, {m.hi[big]:.3f}]; "
            f"modal in {m.largest_drop.mode_freq:.0%} of resamples)"
        )
        first = m.first_significant
        if first.layer is None:
            head = (
                f"From {self.stage_a} to {self.stage_b}, no layer shows a significant drop in "
                f"{what} (one-sided, Holm across {len(m.drop)} layers, α = {self.alpha}); "
            )
        else:
            head = (
                f"From {self.stage_a} to {self.stage_b}, {what} drops significantly from layer "
                f"{first.layer} on (first significant layer; {pct}% bootstrap interval "
                f"{first.lo}–{first.hi}, significant somewhere in {first.found_freq:.0%} of "
                f"resamples; Holm across {len(m.drop)} layers, α = {self.alpha}); "
            )
        tail = ""
        if self.cos_ab is not None:
            cos = self.cos_ab[big]
            band = ""
            if self.cos_null is not None:
                lo, hi = self.cos_null
                inside = "inside" if lo <= cos <= hi else "outside"
                band = f", {inside} the random-direction band [{lo:.2f}, {hi:.2f}]"
            tail = (
                f"; there the {self.stage_b} direction has cosine {cos:.2f} with the "
                f"{self.stage_a} one{band}"
            )
        return head + largest + tail + "."


def _group_weights(codes: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n] example weights = how often each example's group was drawn (groups resampled)."""
    n_groups = int(codes.max()) + 1
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    offsets = (np.arange(n_boot) * n_groups)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=n_boot * n_groups)
    return counts.reshape(n_boot, n_groups)[:, codes].astype(np.float64)


def _weighted_auroc(scores: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUROC (ties count 1/2) of scores [L, n] under example weights w [B, n] → [B, L]."""
    n_boot = w.shape[0]
    pos_w = w * y
    neg_w = w * (1 - y)
    denom = pos_w.sum(1) * neg_w.sum(1)
    out = np.empty((n_boot, scores.shape[0]))
    for layer, s in enumerate(scores):
        uniq, idx = np.unique(s, return_inverse=True)
        n_u = uniq.size
        flat = (idx[None, :] + (np.arange(n_boot) * n_u)[:, None]).ravel()
        neg_u = np.bincount(flat, weights=neg_w.ravel(), minlength=n_boot * n_u)
        neg_u = neg_u.reshape(n_boot, n_u)
        credit = np.cumsum(neg_u, axis=1) - 0.5 * neg_u  # negatives below + half of ties
        out[:, layer] = (pos_w * credit[:, idx]).sum(1) / denom
    return out


def _weighted_cohens_d(proj: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Cohen's d (pooled SD) of proj [L, n] under example weights w [B, n] → [B, L]."""
    x = proj - proj.mean(1, keepdims=True)
    stats = []
    for cls_w in (w * y, w * (1 - y)):
        n = cls_w.sum(1)[:, None]
        mean = cls_w @ x.T / n
        stats.append((n, mean, cls_w @ (x**2).T - n * mean**2))
    (n1, m1, ss1), (n0, m0, ss0) = stats
    return (m1 - m0) / np.sqrt((ss1 + ss0) / (n1 + n0 - 2))


def cohens_d(
    proj: Float[np.ndarray, "l n"], labels: Int[np.ndarray, " n"]
) -> Float[np.ndarray, " l"]:
    """Cohen's d (mean_1 - mean_0 over pooled SD) of projections per layer; > 0 = classes apart."""
    x = np.asarray(proj, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"proj must be 2-D [n_layers, n_examples]; got shape {x.shape}.")
    y = np.asarray(labels)
    if y.shape != (x.shape[1],) or not np.isin(y, (0, 1)).all() or np.unique(y).size < 2:
        raise DataError(
            f"labels must be 0/1 with both classes and shape ({x.shape[1]},); got shape {y.shape}."
        )
    if x.shape[1] < 3:
        raise DataError("Cohen's d needs at least 3 examples (pooled SD has n - 2 dof).")
    return _weighted_cohens_d(x, y, np.ones((1, x.shape[1])))[0]


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values along the last axis (step-down, monotone, capped at 1)."""
    n = p.shape[-1]
    order = np.argsort(p, axis=-1)
    ranked = np.take_along_axis(p, order, axis=-1) * (n - np.arange(n))
    adjusted = np.minimum(np.maximum.accumulate(ranked, axis=-1), 1.0)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return out


def _shifted_p(values: np.ndarray, boot: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """One-sided p for "drop > 0" of values [..., L] against the centred bootstrap null."""
    n_boot = boot.shape[0]
    out = np.empty(values.shape)
    for layer in range(boot.shape[1]):
        null = np.sort(boot[:, layer] - observed[layer])
        n_ge = n_boot - np.searchsorted(null, values[..., layer], side="left")
        out[..., layer] = (1 + n_ge) / (n_boot + 1)
    return out


def _layer_estimate(observed: int | None, boot: np.ndarray, ci: float) -> LayerEstimate:
    """Summarise bootstrap layer picks boot [B] (-1 = none) around the observed pick."""
    found = boot[boot >= 0]
    if found.size == 0:
        return LayerEstimate(observed, None, None, None, 0.0, 0.0)
    tail = 100 * (1 - ci) / 2
    lo = np.percentile(found, tail, method="lower")
    hi = np.percentile(found, 100 - tail, method="higher")
    counts = np.bincount(found)
    return LayerEstimate(
        observed,
        int(lo),
        int(hi),
        int(counts.argmax()),
        float(counts.max() / boot.size),
        float(found.size / boot.size),
    )


def _drops(
    a_obs: np.ndarray,
    b_obs: np.ndarray,
    a_boot: np.ndarray,
    b_boot: np.ndarray,
    alpha: float,
    ci: float,
) -> LayerDrops:
    """Drop A - B per layer with percentile CI, shifted-bootstrap p, Holm and layer estimates."""
    drop = a_obs - b_obs
    boot = a_boot - b_boot
    tail = 100 * (1 - ci) / 2
    lo, hi = np.percentile(boot, [tail, 100 - tail], axis=0)
    p = _shifted_p(drop, boot, drop)
    p_holm = _holm(p)
    significant = p_holm <= alpha
    # Each resample is tested against the same centred bootstrap null, then Holm within it.
    sig_boot = _holm(_shifted_p(boot, boot, drop)) <= alpha
    first_boot = np.where(sig_boot.any(1), sig_boot.argmax(1), -1)
    first = int(significant.argmax()) if significant.any() else None
    return LayerDrops(
        a=a_obs.tolist(),
        b=b_obs.tolist(),
        drop=drop.tolist(),
        lo=lo.tolist(),
        hi=hi.tolist(),
        p=p.tolist(),
        p_holm=p_holm.tolist(),
        significant=significant.tolist(),
        first_significant=_layer_estimate(first, first_boot, ci),
        largest_drop=_layer_estimate(int(drop.argmax()), boot.argmax(1), ci),
    )


def localize(
    scores_a: Float[np.ndarray, "l n"],
    scores_b: Float[np.ndarray, "l n"],
    proj_a: Float[np.ndarray, "l n"],
    proj_b: Float[np.ndarray, "l n"],
    labels: Int[np.ndarray, " n"],
    groups: ArrayLike,
    cos_ab: Float[np.ndarray, " l"] | None = None,
    cos_null: tuple[float, float] | None = None,
    *,
    stage_a: str = "A",
    stage_b: str = "B",
    metric: Metric = "auroc",
    n_boot: int = 2000,
    alpha: float = 0.05,
    ci: float = 0.95,
    seed: int = 0,
) -> Localization:
    """Find the layers where compassion weakened from stage A to B, with paired bootstrap stats.

    scores_*: out-of-fold probe decision scores (higher = more compassionate); proj_*: each
    stage's activations projected on stage A's compassion direction; cos_ab: optional per-layer
    cosine between the two stages' directions, cos_null its random-direction band.
    """
    arrays = {"scores_a": scores_a, "scores_b": scores_b, "proj_a": proj_a, "proj_b": proj_b}
    arrs = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
    shapes = {k: v.shape for k, v in arrs.items()}
    if len(set(shapes.values())) != 1 or arrs["scores_a"].ndim != 2:
        raise DataError(
            f"scores_a, scores_b, proj_a, proj_b must share one 2-D shape [n_layers, n_examples] "
            f"over the same examples; got {shapes}."
        )
    n_layers, n_examples = arrs["scores_a"].shape
    y, codes = check_labels_groups(labels, groups, n_examples)
    cos = None
    if cos_ab is not None:
        cos = np.asarray(cos_ab, dtype=np.float64)
        if cos.shape != (n_layers,):
            raise DataError(
                f"cos_ab has shape {cos.shape}; pass one cosine per layer, shape ({n_layers},)."
            )
    if metric not in _METRIC_TEXT:
        raise DataError(f"metric must be 'auroc' or 'separation', got {metric!r}.")
    if not (0 < alpha < 1 and 0 < ci < 1):
        raise DataError(f"alpha and ci must lie in (0, 1); got alpha={alpha}, ci={ci}.")
    if (n_boot + 1) * alpha < n_layers:
        raise DataError(
            f"n_boot={n_boot} cannot give p below {1 / (n_boot + 1):.2g}, but Holm over "
            f"{n_layers} layers needs p <= {alpha / n_layers:.2g}; raise n_boot to at least "
            f"{int(np.ceil(n_layers / alpha)) - 1}."
        )
    if n_examples < 3:
        raise DataError("localize needs at least 3 examples (Cohen's d has n - 2 dof).")

    rng = np.random.default_rng(seed)
    w = _group_weights(codes, n_boot, rng)
    valid = ((w * y).sum(1) > 0) & ((w * (1 - y)).sum(1) > 0) & (w.sum(1) > 2)
    if valid.mean() < 0.9:
        raise DataError(
            f"{(~valid).mean():.0%} of group resamples miss a class; too few groups contain each "
            "class — use more groups (e.g. contrastive pairs, each holding both classes)."
        )
    w = np.vstack([np.ones((1, n_examples)), w[valid]])

    def paired(metric_fn: _WeightedMetric, a: np.ndarray, b: np.ndarray) -> LayerDrops:
        va, vb = metric_fn(a, y, w), metric_fn(b, y, w)
        return _drops(va[0], vb[0], va[1:], vb[1:], alpha, ci)

    return Localization(
        stage_a=stage_a,
        stage_b=stage_b,
        metric=metric,
        auroc=paired(_weighted_auroc, arrs["scores_a"], arrs["scores_b"]),
        separation=paired(_weighted_cohens_d, arrs["proj_a"], arrs["proj_b"]),
        alpha=alpha,
        ci=ci,
        n_boot=int(valid.sum()),
        n_groups=int(codes.max()) + 1,
        cos_ab=None if cos is None else cos.tolist(),
        cos_null=None if cos_null is None else (float(cos_null[0]), float(cos_null[1])),
    )
