"""Surface baselines: giveaway words and length are caught, matched pairs are not, gains and
flags follow the probe's scores, and the record round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from valuetrace.analysis.report_sections import surface_section
from valuetrace.analysis.summary import surface_summary
from valuetrace.config import ProbingConfig, SurfaceConfig, check_ranges
from valuetrace.errors import CacheError, ConfigError, DataError
from valuetrace.probing.folds import grouped_folds
from valuetrace.probing.surface import (
    LENGTH,
    NGRAM,
    SurfaceRecord,
    example_texts,
    fit_surface,
    surface_record,
)
from valuetrace.records import load_record, save_record

ANIMALS = ["pig", "cow", "hen", "goat", "duck", "fox", "owl", "crab", "deer", "mouse"]
TASKS = ["report", "invoice", "order", "ledger", "rota", "delivery"]


def _pairs(make, n_pairs: int = 60, seed: int = 0):
    """Texts, labels, group ids and folds of pairs: make(rng, i) -> (label-1, label-0 text)."""
    rng = np.random.default_rng(seed)
    texts, labels, groups = [], [], []
    for i in range(n_pairs):
        good, bad = make(rng, i)
        texts += [good, bad]
        labels += [1, 0]
        groups += [f"g{i}", f"g{i}"]
    labels, groups = np.array(labels), np.array(groups)
    return texts, labels, groups, grouped_folds(groups, 5, 0, labels)


def _giveaway(rng, i):
    a, t = rng.choice(ANIMALS), rng.choice(TASKS)
    return (
        f"she gently helped the {a} before the {t}",
        f"she cruelly ignored the {a} before the {t}",
    )


def _swapped(rng, i):
    """Same words, same length: only which slot the animal fills differs."""
    a, t = rng.choice(ANIMALS), rng.choice(TASKS)
    frame = "she spent most of the hour on the {} today and a minute on the {} today"
    return frame.format(a, t), frame.format(t, a)


def _longer(rng, i):
    a = rng.choice(ANIMALS)
    pad = " ".join(rng.choice(TASKS, size=rng.integers(6, 10)))
    return f"the {a} and {pad}", f"the {a} and {rng.choice(TASKS)}"


def test_giveaway_words_are_decoded_and_listed_on_top():
    texts, labels, groups, folds = _pairs(_giveaway)
    base = fit_surface(texts, labels, folds)
    rec = surface_record("s", "c", base, labels, groups, {}, ProbingConfig(n_bootstrap=200))
    scores = {b.name: b for b in rec.baselines}
    assert scores[NGRAM].auroc > 0.95 and scores[NGRAM].auroc_lo > 0.9
    positive = [f.ngram for f in rec.features if f.weight > 0]
    negative = [f.ngram for f in rec.features if f.weight < 0]
    assert {"gently", "helped"} & set(positive[:4])
    assert {"cruelly", "ignored"} & set(negative[:4])


def test_swapped_pairs_give_the_surface_nothing():
    texts, labels, groups, folds = _pairs(_swapped)
    base = fit_surface(texts, labels, folds)
    # Both sides of a pair share every n-gram up to length 2 and the length: tied scores.
    pair_scores = base.oof_scores.reshape(2, -1, 2)
    np.testing.assert_allclose(pair_scores[..., 0], pair_scores[..., 1], atol=1e-9)
    rec = surface_record("s", "c", base, labels, groups, {}, ProbingConfig(n_bootstrap=0))
    assert all(b.auroc == pytest.approx(0.5) for b in rec.baselines)


def test_a_length_confound_is_caught_by_the_length_model():
    texts, labels, groups, folds = _pairs(_longer)
    base = fit_surface(texts, labels, folds)
    rec = surface_record("s", "c", base, labels, groups, {}, ProbingConfig(n_bootstrap=0))
    assert {b.name: b.auroc for b in rec.baselines}[LENGTH] > 0.95


def test_gain_and_flag_follow_the_probe_scores():
    texts, labels, groups, folds = _pairs(_swapped)
    base = fit_surface(texts, labels, folds)
    rng = np.random.default_rng(1)
    strong = labels * 3.0 + rng.normal(size=len(labels))  # AUROC near 0.98
    noise = rng.normal(size=len(labels))
    stages = {"good": ([0, 1], np.stack([noise, strong])), "weak": ([0, 1], np.stack([noise] * 2))}
    cfg = ProbingConfig(n_bootstrap=300, surface=SurfaceConfig(margin=0.05))
    rec = surface_record("s", "c", base, labels, groups, stages, cfg)
    good, weak = rec.stages
    assert good.best_layer == 1 and not good.flagged and weak.flagged
    assert rec.flagged_stages == ["weak"]
    assert good.gain[1] == pytest.approx(good.probe_auroc[1] - 0.5)
    assert good.gain_lo[1] > 0.3 and good.gain_lo[0] < 0 < good.gain_hi[0]
    for st in rec.stages:
        assert all(lo <= g <= hi for lo, g, hi in zip(st.gain_lo, st.gain, st.gain_hi, strict=True))
    # A layer the probe step left undefined (NaN scores) stays undefined and is never the best.
    blank = np.stack([np.full(len(labels), np.nan), strong])
    (st,) = surface_record("s", "c", base, labels, groups, {"x": ([0, 1], blank)}, cfg).stages
    assert np.isnan(st.probe_auroc[0]) and np.isnan(st.gain[0]) and st.best_layer == 1


def test_record_round_trips_and_renders(tmp_path):
    texts, labels, groups, folds = _pairs(_giveaway)
    base = fit_surface(texts, labels, folds)
    noise = np.random.default_rng(2).normal(size=(2, len(labels)))
    rec = surface_record(
        "compassion", "compassion", base, labels, groups, {"base": ([0, 1], noise)}
    )
    path = save_record(rec, tmp_path / "surface_baselines.json")
    back = load_record(SurfaceRecord, path)
    assert back == rec and back.best_baseline.name == NGRAM
    lines = surface_summary([back])
    assert all(len(line) <= 100 for line in lines)
    assert "FLAG" in " ".join(lines) and "gently" in " ".join(lines)
    section = surface_section([back])
    assert section is not None and "Surface baselines" in section.title
    assert surface_section([]) is None
    with pytest.raises(CacheError, match=r"not 'valuetrace\.surface_baselines'"):
        (tmp_path / "other.json").write_text('{"schema": "x", "schema_version": 1}')
        load_record(SurfaceRecord, tmp_path / "other.json")


def test_bad_input_is_refused_with_the_fix_named():
    with pytest.raises(ConfigError, match=r"probing\.surface\.margin"):
        check_ranges(ProbingConfig(surface=SurfaceConfig(margin=0.9)), "probing")
    with pytest.raises(ConfigError, match="ngram_min"):
        SurfaceConfig(ngram_min=3, ngram_max=2)
    with pytest.raises(DataError, match="one prompt per response"):
        example_texts(["a"], ["b", "c"])
    with pytest.raises(DataError, match="one of each per example"):
        fit_surface(["a b", "c d"], np.array([0, 1]), np.array([0]))
    texts, labels, groups, folds = _pairs(_giveaway, n_pairs=10)
    base = fit_surface(texts, labels, folds)
    with pytest.raises(DataError, match="one row of out-of-fold scores per layer"):
        surface_record("s", "c", base, labels, groups, {"x": ([0], np.zeros((2, len(labels))))})
