"""Surface baselines: how much of a probe set is decodable from its raw words and its length.

Why: a probe that reads a concept at every layer, the embedding layer included, may only be
reading the words the concept's examples were written with (Hewitt & Liang 2019, "Designing and
Interpreting Probes with Control Tasks"; Belinkov 2022, "Probing Classifiers: Promises,
Shortcomings, and Advances"). Two classifiers that see only the text answer that: a word/n-gram
logistic regression (scikit-learn ``TfidfVectorizer`` + ``LogisticRegression`` in one
``Pipeline``, so the vocabulary and idf are fitted on each training part only) and a length-only
logistic regression (characters and words). Both are scored out of fold on the *same grouped
folds* as the probes (`probing.folds`), so a layer's AUROC and a baseline's AUROC are measured on
the same held-out examples, and a layer's gain over the best baseline gets a paired group-bootstrap
interval (`valuetrace.stats.auroc_gain`).

A probe set is *flagged* when its best surface baseline comes within ``margin`` AUROC of the best
layer of a stage: the layer curve then cannot show much that the words do not already give.

Pure text and arrays in, results out; no model code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from jaxtyping import Float, Int, Shaped
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from valuetrace.config import ProbingConfig, SurfaceConfig
from valuetrace.errors import DataError
from valuetrace.stats import auroc, auroc_gain, group_bootstrap_weights, percentile_ci

NGRAM = "ngram"
LENGTH = "length"
_ZERO = 1e-6


@dataclass
class SurfaceFeature:
    """One n-gram of the full-data n-gram model and its weight (positive: toward label 1)."""

    ngram: str
    weight: float


@dataclass
class BaselineScore:
    """Out-of-fold AUROC of one surface baseline, with its group-bootstrap interval."""

    name: str
    auroc: float
    auroc_lo: float
    auroc_hi: float


@dataclass
class StageGain:
    """One stage's probe AUROC per layer and its gain over the best surface baseline.

    ``gain[i]`` is layer ``layers[i]``'s out-of-fold AUROC minus the best baseline's, on the same
    examples; ``gain_lo``/``gain_hi`` its paired group-bootstrap interval (the best baseline is
    taken inside each resample, so choosing it is part of the uncertainty). ``flagged``: the best
    baseline comes within ``margin`` of ``best_auroc``.
    """

    stage: str
    layers: list[int]
    probe_auroc: list[float]
    gain: list[float]
    gain_lo: list[float]
    gain_hi: list[float]
    best_layer: int
    best_auroc: float
    flagged: bool


@dataclass
class SurfaceRecord:
    """A probe set's surface baselines, top n-grams, and every stage's gain over them."""

    SCHEMA: ClassVar[str] = "valuetrace.surface_baselines"
    VERSION: ClassVar[int] = 1

    dataset: str
    concept: str
    n_examples: int
    n_groups: int
    ngram_range: list[int]
    margin: float
    ci: float
    n_bootstrap: int
    baselines: list[BaselineScore]
    features: list[SurfaceFeature]
    stages: list[StageGain]

    @property
    def best_baseline(self) -> BaselineScore:
        """The baseline with the highest out-of-fold AUROC."""
        return max(self.baselines, key=lambda b: b.auroc)

    @property
    def flagged_stages(self) -> list[str]:
        """Stages whose best layer the surface baseline comes within ``margin`` of."""
        return [s.stage for s in self.stages if s.flagged]


@dataclass(frozen=True)
class SurfaceBaselines:
    """Out-of-fold decision values of each baseline ``[k, n]`` and the n-gram model's features."""

    names: list[str]
    oof_scores: Float[np.ndarray, "k n"]
    features: list[SurfaceFeature]


def example_texts(prompts: list[str], responses: list[str]) -> list[str]:
    """The raw text a model reads for each example: prompt then response (prompt may be empty)."""
    if len(prompts) != len(responses):
        raise DataError(
            f"{len(prompts)} prompts for {len(responses)} responses; pass one prompt per response"
        )
    return [f"{p}\n{r}" if p else r for p, r in zip(prompts, responses, strict=True)]


def length_features(texts: list[str]) -> Float[np.ndarray, "n 2"]:
    """Characters and whitespace-separated words per text, ``[n, 2]`` float64."""
    return np.array([[len(t), len(t.split())] for t in texts], dtype=np.float64)


def fit_surface(
    texts: list[str],
    labels: Int[np.ndarray, " n"],
    folds: Int[np.ndarray, " n"],
    config: SurfaceConfig | None = None,
) -> SurfaceBaselines:
    """Score the n-gram and length baselines out of fold on the given folds.

    Each fold's test examples are scored by models fitted on the other folds only (the n-gram
    vocabulary and idf included); the listed features come from one fit on all examples.

    Raises:
        DataError: texts, labels and folds do not line up, a label is not 0/1, or a fold's
            training part holds one class.
    """
    config = config or SurfaceConfig()
    labels, folds = np.asarray(labels), np.asarray(folds)
    if not len(texts) == len(labels) == len(folds):
        raise DataError(
            f"{len(texts)} texts, {len(labels)} labels and {len(folds)} fold ids; pass one of "
            "each per example"
        )
    if not np.isin(labels, [0, 1]).all():
        raise DataError("labels must be 0/1 (1 = concept present); map them to 0/1")
    models = {NGRAM: lambda: _ngram_model(config), LENGTH: lambda: _length_model(config)}
    inputs = {NGRAM: np.asarray(texts, dtype=object), LENGTH: length_features(texts)}
    oof = np.empty((len(models), len(texts)))
    for fold in np.unique(folds):
        test = folds == fold
        if len(np.unique(labels[~test])) < 2:
            raise DataError(
                f"fold {int(fold)}'s training part holds one class; use folds that mix both"
            )
        for row, (name, make) in enumerate(models.items()):
            model = make().fit(inputs[name][~test], labels[~test])
            oof[row, test] = model.decision_function(inputs[name][test])
    full = _ngram_model(config).fit(inputs[NGRAM], labels)
    return SurfaceBaselines(list(models), oof, top_features(full, config.top_k))


def top_features(model: Pipeline, top_k: int) -> list[SurfaceFeature]:
    """The ``top_k`` n-grams pushing most toward label 1, then the ``top_k`` toward label 0.

    N-grams whose weight is zero to within 1e-6 are left out: they carry nothing (on pairs made
    of the same words every weight is zero, and the list is empty).
    """
    names = model.named_steps["tfidf"].get_feature_names_out()
    coef = model.named_steps["logreg"].coef_[0]
    order = np.argsort(-coef, kind="stable")
    positive = [i for i in order[:top_k] if coef[i] > _ZERO]
    negative = [i for i in order[::-1][:top_k] if coef[i] < -_ZERO]
    return [SurfaceFeature(str(names[i]), float(coef[i])) for i in positive + negative]


def surface_record(
    dataset: str,
    concept: str,
    baselines: SurfaceBaselines,
    labels: Int[np.ndarray, " n"],
    groups: Shaped[np.ndarray, " n"],
    stage_scores: dict[str, tuple[list[int], Float[np.ndarray, "l n"]]],
    probing: ProbingConfig | None = None,
    seed: int = 0,
) -> SurfaceRecord:
    """Compare each stage's out-of-fold probe scores with the baselines on the same examples.

    ``stage_scores`` maps a stage to its layer ids and out-of-fold probe decision values
    ``[l, n]``, scored on the folds the baselines used. Intervals: `probing.n_bootstrap` group
    resamples (0: none) seeded by `seed`, at level `probing.ci`; the flag: `probing.surface`.

    Raises:
        DataError: scores, labels and groups do not line up.
    """
    probing = probing or ProbingConfig()
    config = probing.surface
    labels, groups = np.asarray(labels), np.asarray(groups)
    n = len(labels)
    if baselines.oof_scores.shape[1] != n or len(groups) != n:
        raise DataError(
            f"baseline scores cover {baselines.oof_scores.shape[1]} examples, labels {n}, groups "
            f"{len(groups)}; pass the same examples in the same order"
        )
    weights = (
        group_bootstrap_weights(groups, probing.n_bootstrap, seed) if probing.n_bootstrap else None
    )
    base_auc = auroc(baselines.oof_scores, labels)
    base_ci = (
        percentile_ci(auroc(baselines.oof_scores, labels, weights), probing.ci)
        if weights is not None
        else np.full((len(base_auc), 2), np.nan)
    )
    stages = []
    for stage, (layers, scores) in stage_scores.items():
        scores = np.asarray(scores)
        if scores.shape != (len(layers), n):
            raise DataError(
                f"stage {stage}: probe scores have shape {scores.shape}, expected "
                f"[{len(layers)}, {n}]; pass one row of out-of-fold scores per layer"
            )
        # A layer the probe step left undefined (constant activations) has NaN scores: NaN here.
        undefined = np.isnan(scores).any(1)
        scores = np.where(undefined[:, None], 0.0, scores)
        gain, gain_ci = auroc_gain(scores, baselines.oof_scores, labels, weights, probing.ci)
        probe_auc = np.where(undefined, np.nan, auroc(scores, labels))
        gain = np.where(undefined, np.nan, gain)
        gain_ci = np.where(undefined[:, None], np.nan, gain_ci)
        best = int(np.nanargmax(probe_auc)) if not undefined.all() else 0
        stages.append(
            StageGain(
                stage=stage,
                layers=[int(x) for x in layers],
                probe_auroc=probe_auc.tolist(),
                gain=gain.tolist(),
                gain_lo=gain_ci[:, 0].tolist(),
                gain_hi=gain_ci[:, 1].tolist(),
                best_layer=int(layers[best]),
                best_auroc=float(probe_auc[best]),
                flagged=bool(np.nanmax(base_auc) >= probe_auc[best] - config.margin),
            )
        )
    return SurfaceRecord(
        dataset=dataset,
        concept=concept,
        n_examples=n,
        n_groups=len(np.unique(groups)),
        ngram_range=list(config.ngram_range),
        margin=config.margin,
        ci=probing.ci,
        n_bootstrap=probing.n_bootstrap,
        baselines=[
            BaselineScore(name, float(a), float(lo), float(hi))
            for name, a, (lo, hi) in zip(baselines.names, base_auc, base_ci, strict=True)
        ],
        features=baselines.features,
        stages=stages,
    )


def _ngram_model(config: SurfaceConfig) -> Pipeline:
    """Word n-gram tf-idf features into an L2 logistic regression (vocabulary fitted per fit)."""
    return Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=config.ngram_range, sublinear_tf=True)),
            ("logreg", LogisticRegression(C=config.C, max_iter=2000)),
        ]
    )


def _length_model(config: SurfaceConfig) -> Pipeline:
    """Standardised character and word counts into an L2 logistic regression."""
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("logreg", LogisticRegression(C=config.C, max_iter=2000)),
        ]
    )
