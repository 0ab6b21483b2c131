"""Compare compassion directions and representations across training stages, with null bands.

Directions follow the project sign convention (positive = compassionate), so cosines are kept
signed: a negative cosine means the direction flipped. Representations are compared with linear
CKA (Kornblith et al. 2019), biased or debiased (unbiased HSIC of Song et al. 2012).
"""

import numpy as np
from jaxtyping import Float, Int
from numpy.typing import ArrayLike

from valuetrace.errors import DataError
from valuetrace.stats import check_labels_groups

_SHUFFLE_CHUNK = 64


def cosine_per_layer(
    a: Float[np.ndarray, "l d"], b: Float[np.ndarray, "l d"]
) -> Float[np.ndarray, " l"]:
    """Signed cosine between two directions at every layer (negative = the direction flipped).

    NaN at a layer where either direction is zero or NaN (undefined there; see
    `degenerate_layers` for the reason).
    """
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    if a64.ndim != 2 or b64.ndim != 2:
        raise DataError(
            f"directions must be 2-D [n_layers, d_model]; got {a64.shape} and {b64.shape}."
        )
    if a64.shape[1] != b64.shape[1]:
        raise DataError(
            f"direction widths differ: a has d_model={a64.shape[1]}, b has d_model={b64.shape[1]}; "
            "cosines need directions from models of the same width (use linear_cka across widths)."
        )
    if a64.shape[0] != b64.shape[0]:
        raise DataError(
            f"layer counts differ: a has {a64.shape[0]} layers, b has {b64.shape[0]}; pass the "
            "same layers for both."
        )
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.einsum("ld,ld->l", a64, b64) / norms
    return np.where(norms > 0, cos, np.nan)


def random_direction_null(
    d_model: int, n_samples: int = 100_000, seed: int = 0, ci: float = 0.95
) -> tuple[float, float]:
    """Central `ci` band of the cosine between two random unit vectors in `d_model` dimensions.

    A direction cosine inside (lo, hi) is no more similar than chance; as the band is symmetric,
    |cos| > hi is the two-sided test. Monte Carlo from the exact law cos = g / sqrt(g² + χ²_{D-1})
    (g ~ N(0, 1)); for large D the band is ≈ ±1.96/√D at ci = 0.95.
    """
    if d_model < 2:
        raise DataError(f"d_model must be at least 2, got {d_model}.")
    if n_samples < 100:
        raise DataError(f"n_samples must be at least 100 for a stable band, got {n_samples}.")
    if not 0 < ci < 1:
        raise DataError(f"ci must lie in (0, 1), e.g. 0.95; got {ci}.")
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(n_samples)
    cos = g / np.sqrt(g**2 + rng.chisquare(d_model - 1, n_samples))
    lo, hi = np.quantile(cos, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def degenerate_layers(
    acts: Float[np.ndarray, "l n d"], labels: Int[np.ndarray, " n"]
) -> dict[int, str]:
    """Layer index -> why a direction or a separation is undefined there (absent = fine).

    A layer whose rows are all identical (e.g. last-token pooling over responses that end in
    the same token) has no class difference and no spread; one whose class means coincide
    exactly has no difference-of-means direction.
    """
    x = np.asarray(acts)
    y = np.asarray(labels)
    out: dict[int, str] = {}
    for layer in range(x.shape[0]):
        rows = x[layer]
        if not np.isfinite(rows).all():
            out[layer] = "non-finite activations"
        elif np.ptp(rows, axis=0).max() == 0:
            out[layer] = "constant layer: every example has the same activation"
        elif np.array_equal(rows[y == 1].mean(0), rows[y == 0].mean(0)):
            out[layer] = "the class means coincide, so there is no difference-of-means direction"
    return out


def _check_acts(acts: np.ndarray, name: str) -> None:
    if acts.ndim != 3:
        raise DataError(
            f"{name} must be 3-D [n_layers, n_examples, d_model]; got shape {acts.shape}."
        )


def shuffled_label_null(
    acts: Float[np.ndarray, "l n d"],
    labels: Int[np.ndarray, " n"],
    groups: ArrayLike,
    reference: Float[np.ndarray, "l d"],
    n_shuffles: int = 200,
    seed: int = 0,
) -> Float[np.ndarray, "s l"]:
    """Cosines of `reference` with difference-of-means directions fitted on shuffled labels.

    A null for "how similar would a direction fitted on this data be by chance": labels are
    permuted inside each group (pairs flip or not), class counts are kept. NaN at a layer where
    `reference` or the shuffled directions are zero.
    """
    x = np.asarray(acts, dtype=np.float64)
    _check_acts(x, "acts")
    n_layers, n_examples, d_model = x.shape
    ref = np.asarray(reference, dtype=np.float64)
    if ref.shape != (n_layers, d_model):
        raise DataError(
            f"reference has shape {ref.shape} but acts imply ({n_layers}, {d_model}); pass one "
            "direction per layer of the same width as the activations."
        )
    if n_shuffles < 1:
        raise DataError(f"n_shuffles must be at least 1, got {n_shuffles}.")
    y, codes = check_labels_groups(labels, groups, n_examples)
    rng = np.random.default_rng(seed)
    # Sorting by (group code + uniform key) permutes positions within each group.
    base = np.argsort(codes, kind="stable")
    perm = np.argsort(codes + rng.random((n_shuffles, n_examples)), axis=1)
    shuffled = np.empty((n_shuffles, n_examples))
    shuffled[:, base] = y[perm]
    n_pos = y.sum()
    weights = shuffled / n_pos - (1 - shuffled) / (n_examples - n_pos)
    out = np.empty((n_shuffles, n_layers))
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero direction gives NaN
        ref_unit = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        for start in range(0, n_shuffles, _SHUFFLE_CHUNK):
            dirs = np.einsum("sn,lnd->sld", weights[start : start + _SHUFFLE_CHUNK], x)
            out[start : start + _SHUFFLE_CHUNK] = np.einsum("sld,ld->sl", dirs, ref_unit) / (
                np.linalg.norm(dirs, axis=2)
            )
    return out


def _hsic_terms(x: np.ndarray, y: np.ndarray, debiased: bool) -> float:
    """HSIC (biased or unbiased) of the linear kernels of centred features x [n, d1], y [n, d2]."""
    n = x.shape[0]
    # tr(K L) with K = x xᵀ, L = y yᵀ, computed in whichever space is smaller.
    if x.shape[1] * y.shape[1] <= n * n:
        tr_kl = float(np.sum((x.T @ y) ** 2))
    else:
        tr_kl = float(np.sum((x @ x.T) * (y @ y.T)))
    if not debiased:
        return tr_kl / (n - 1) ** 2
    # Song et al. (2012) with K̃, L̃ = K, L with zeroed diagonals.
    diag_k = np.einsum("nd,nd->n", x, x)
    diag_l = np.einsum("nd,nd->n", y, y)
    k1 = x @ x.sum(0) - diag_k  # K̃ 1
    l1 = y @ y.sum(0) - diag_l  # L̃ 1
    tr_tilde = tr_kl - float(diag_k @ diag_l)
    return (
        tr_tilde + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(k1 @ l1)
    ) / (n * (n - 3))


def linear_cka(
    x: Float[np.ndarray, "n d1"], y: Float[np.ndarray, "n d2"], debiased: bool = False
) -> float:
    """Linear CKA between two representations of the same examples (any widths); 1 = same geometry.

    Biased: HSIC = tr(K H L H)/(n-1)² (Kornblith et al. 2019). Debiased: the unbiased HSIC of
    Song et al. (2012), which removes the upward bias of CKA when n is small relative to width.
    NaN when a representation has zero (or, debiased, non-positive) self-similarity, e.g. a
    constant layer: CKA is undefined there.
    """
    x64 = np.asarray(x, dtype=np.float64)
    y64 = np.asarray(y, dtype=np.float64)
    if x64.ndim != 2 or y64.ndim != 2:
        raise DataError(
            f"linear_cka needs 2-D [n_examples, width] arrays; got {x64.shape} and {y64.shape}."
        )
    n = x64.shape[0]
    if y64.shape[0] != n:
        raise DataError(
            f"example counts differ: x has {n}, y has {y64.shape[0]}; CKA compares representations "
            "of the same examples in the same order."
        )
    min_n = 4 if debiased else 2
    if n < min_n:
        raise DataError(f"{'debiased' if debiased else 'linear'} CKA needs n >= {min_n}.")
    x64 = x64 - x64.mean(0)
    y64 = y64 - y64.mean(0)
    hxx = _hsic_terms(x64, x64, debiased)
    hyy = _hsic_terms(y64, y64, debiased)
    if not (hxx > 0 and hyy > 0):
        return float("nan")  # constant activations: no geometry to compare
    return _hsic_terms(x64, y64, debiased) / np.sqrt(hxx * hyy)


def cka_per_layer(
    acts_a: Float[np.ndarray, "l n d1"], acts_b: Float[np.ndarray, "l n d2"], debiased: bool = False
) -> Float[np.ndarray, " l"]:
    """Linear CKA between two stages' activations of the same examples, layer by layer."""
    a = np.asarray(acts_a)
    b = np.asarray(acts_b)
    _check_acts(a, "acts_a")
    _check_acts(b, "acts_b")
    if a.shape[:2] != b.shape[:2]:
        raise DataError(
            f"acts_a has {a.shape[0]} layers x {a.shape[1]} examples but acts_b has "
            f"{b.shape[0]} x {b.shape[1]}; pass the same layers and the same examples for both."
        )
    return np.array([linear_cka(a[i], b[i], debiased) for i in range(a.shape[0])])
