"""Tests for analysis.concept_sources: cross-source transfer, direction cosines and the rule."""

from __future__ import annotations

import numpy as np
import pytest

from valuetrace.analysis.concept_sources import (
    CROSS,
    SPECIFIC,
    SourceData,
    format_matrix,
    scope_notes,
    source_agreement,
)
from valuetrace.analysis.localize import compare_stages
from valuetrace.config import ConceptSourcesConfig, ProbingConfig
from valuetrace.errors import DataError
from valuetrace.probing import probe_layers
from valuetrace.probing.folds import grouped_folds

D = 16
PROBING = ProbingConfig(n_folds=3, n_bootstrap=200)


def _source(
    shared: np.ndarray, own: np.ndarray, seed: int, n_pairs: int = 60, worded: bool = False
) -> SourceData:
    """Pairs split along `shared` at layer 0 and along `own` (orthogonal to it) at layer 1.

    Texts are random words unrelated to the label, unless `worded`: then each label has its own
    word, which a surface baseline reads perfectly.
    """
    rng = np.random.default_rng(seed)
    n = 2 * n_pairs
    labels = np.tile([1, 0], n_pairs)
    sign = (labels - 0.5)[:, None]
    base = rng.normal(size=(n_pairs, D)).repeat(2, axis=0)
    acts = np.stack(
        [base + 5.0 * sign * shared + rng.normal(size=(n, D)) for _ in range(2)]
    ).astype(np.float32)
    acts[1] = base + 5.0 * sign * own + rng.normal(size=(n, D))
    words = np.array(["alpha", "beta", "gamma", "delta", "omega"])
    texts = [
        ("kind " if worded and y else "cold " if worded else "")
        + " ".join(rng.choice(words, size=5))
        for y in labels
    ]
    return SourceData(acts, labels, np.repeat(np.arange(n_pairs), 2), texts)


def _sources(worded_primary: bool = False) -> dict[str, SourceData]:
    basis = np.linalg.qr(np.random.default_rng(99).normal(size=(D, D)))[0].T  # orthonormal
    return {
        "pairs": _source(basis[0], basis[1], 1, worded=worded_primary),
        "minimal": _source(basis[0], basis[2], 2),
        "essays": _source(basis[0], basis[3], 3),
    }


def test_a_shared_direction_transfers_and_a_source_own_one_does_not() -> None:
    config = ConceptSourcesConfig(sources=["pairs", "minimal", "essays"])
    result = source_agreement(_sources(), "pairs", config, PROBING, layers=[0, 1], stage="base")
    auc = np.asarray(result.auroc)
    assert auc.shape == (3, 3, 2)
    assert (auc[:, :, 0] > 0.9).all()  # every source's probe reads every other at layer 0
    off = ~np.eye(3, dtype=bool)
    assert (np.abs(auc[:, :, 1][off] - 0.5) < 0.2).all()  # own directions: chance elsewhere
    assert (np.diag(auc[:, :, 1]) > 0.9).all()  # ... but each reads itself (out of fold)
    assert result.verdict == [CROSS, SPECIFIC]
    assert result.transfers_to["pairs"] == [2, 0]
    lo, hi = np.asarray(result.auroc_lo), np.asarray(result.auroc_hi)
    assert (lo <= auc + 1e-12).all() and (auc <= hi + 1e-12).all()
    cos = np.asarray(result.cosine)
    assert (cos[:, :, 0][off] > 0.8).all()
    assert (np.abs(cos[:, :, 1][off]) < 0.6).all()
    assert result.cosine_null[1] < 0.8
    # texts carry nothing: the probe beats the surface baseline at both layers
    assert result.passes_surface == [True, True] and result.concept_layers == [0]
    assert result.scope(0) == CROSS and result.scope(1) == SPECIFIC
    text = format_matrix(result)
    assert "layer 1: source-specific" in text and "rule: cross-source" in text


def test_a_worded_primary_fails_the_surface_check_and_the_bar_can_be_raised() -> None:
    config = ConceptSourcesConfig(sources=["pairs", "minimal", "essays"], min_auroc=0.999)
    result = source_agreement(_sources(True), "pairs", config, PROBING, layers=[0, 1])
    assert result.surface_auroc["pairs"] > 0.95 and result.surface_auroc["minimal"] < 0.75
    assert result.passes_surface == [False, False] and result.concept_layers == []
    assert result.verdict == [SPECIFIC, SPECIFIC]  # no transfer reaches 0.999


def test_bad_sources_are_refused() -> None:
    sources = _sources()
    config = ConceptSourcesConfig(sources=["pairs", "minimal"], min_sources=1)
    with pytest.raises(DataError, match="including the primary"):
        source_agreement({"pairs": sources["pairs"]}, "pairs", config, PROBING, layers=[0, 1])
    wide = SourceData(
        np.concatenate([sources["minimal"].acts] * 2, axis=2),
        sources["minimal"].labels,
        sources["minimal"].groups,
        sources["minimal"].texts,
    )
    with pytest.raises(DataError, match="differ in"):
        source_agreement(
            {"pairs": sources["pairs"], "minimal": wide}, "pairs", config, PROBING, layers=[0, 1]
        )
    with pytest.raises(DataError, match="not among"):
        source_agreement(
            {k: sources[k] for k in ("pairs", "minimal")}, "pairs", config, PROBING, layers=[0, 1]
        ).scope(5)


def test_verdicts_on_source_specific_layers_are_noted() -> None:
    sources = _sources()
    config = ConceptSourcesConfig(sources=["pairs", "minimal", "essays"])
    agreement = source_agreement(sources, "pairs", config, PROBING, layers=[0, 1], stage="a")
    parent = sources["pairs"]
    child = parent.acts.copy()
    sign = (parent.labels - 0.5)[:, None]
    for layer in (0, 1):  # the child loses most of the class gap at both layers
        gap = parent.acts[layer][parent.labels == 1] - parent.acts[layer][parent.labels == 0]
        child[layer] -= 0.8 * sign * gap.mean(0)
    folds = grouped_folds(parent.groups, 3, 0, parent.labels)
    cmp, _ = compare_stages(
        parent.acts,
        child,
        parent.labels,
        parent.groups,
        folds,
        stage_a="a",
        stage_b="b",
        layers=[0, 1],
        n_boot=200,
    )
    assert cmp.verdicts[0].fired and cmp.verdicts[1].fired
    notes = scope_notes({"a": agreement}, [cmp], [])
    assert len(notes) == 1 and "a→b: source-specific at layer(s) 1 (" in notes[0]
    assert scope_notes({"other": agreement}, [cmp], []) == []


def test_probes_fitted_by_the_probe_step_are_reused_not_refitted() -> None:
    sources = {k: v for k, v in _sources().items() if k != "essays"}
    config = ConceptSourcesConfig(sources=list(sources), min_sources=1)
    fresh = source_agreement(sources, "pairs", config, PROBING, layers=[0, 1])
    no_control = ProbingConfig(n_folds=3, n_bootstrap=200, control=False)
    fitted = {
        n: probe_layers(s.acts, s.labels, s.groups, no_control, layers=[0, 1])
        for n, s in sources.items()
    }
    reused = source_agreement(sources, "pairs", config, PROBING, layers=[0, 1], fitted=fitted)
    assert reused.auroc == fresh.auroc and reused.auroc_lo == fresh.auroc_lo
    pairs = sources["pairs"]
    other = {"pairs": probe_layers(pairs.acts[:1], pairs.labels, pairs.groups, no_control)}
    with pytest.raises(DataError, match="rerun `valuetrace probe`"):
        source_agreement(sources, "pairs", config, PROBING, layers=[0, 1], fitted=other)
