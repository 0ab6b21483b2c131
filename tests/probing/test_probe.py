"""Tests for probing.probe: agreement with scikit-learn, controls, intervals, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.probing.synthetic import oof_metrics, planted, sklearn_oof
from valuetrace.config import ProbingConfig
from valuetrace.errors import ConfigError, ValuetraceError
from valuetrace.probing import fit_probe, probe_layers

FAST = ProbingConfig(n_bootstrap=200, control=False)


def _assert_matches_sklearn(acts: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> None:
    results = probe_layers(acts, labels, groups, FAST)
    acc, auc = oof_metrics(sklearn_oof(acts, labels, results.folds), labels)
    np.testing.assert_allclose(results.accuracy, acc, atol=0.01)
    np.testing.assert_allclose(results.auroc, auc, atol=0.01)


def test_matches_sklearn_on_planted_data() -> None:
    _assert_matches_sklearn(*planted(200, (0.0, 0.7, 2.5)))


def test_matches_sklearn_on_tiny_llama_activations(llama_acts) -> None:
    _assert_matches_sklearn(*llama_acts)


def test_control_near_chance_while_real_accuracy_is_high() -> None:
    results = probe_layers(*planted(400, (5.0,)), ProbingConfig(n_bootstrap=200))
    assert results.accuracy[0] > 0.9
    assert abs(results.control_accuracy[0] - 0.5) < 0.08
    assert results.selectivity[0] == pytest.approx(
        results.accuracy[0] - results.control_accuracy[0]
    )
    lo, hi = results.selectivity_ci[0]
    assert lo <= results.selectivity[0] <= hi and lo > 0.3


def test_intervals_contain_the_estimate_and_shrink_with_n() -> None:
    widths = []
    for n_pairs in (60, 600):
        r = probe_layers(*planted(n_pairs, (1.2,), seed=n_pairs), FAST)
        for value, (lo, hi) in ((r.accuracy[0], r.accuracy_ci[0]), (r.auroc[0], r.auroc_ci[0])):
            assert lo <= value <= hi
        widths.append(r.accuracy_ci[0, 1] - r.accuracy_ci[0, 0])
    assert widths[1] < 0.6 * widths[0]


def test_nested_C_choice_picks_from_the_grid_per_layer() -> None:
    grid = [0.001, 0.1, 10.0]
    r = probe_layers(
        *planted(100, (0.0, 2.0)), ProbingConfig(C=grid, n_bootstrap=20, control=False)
    )
    assert set(r.fold_C.ravel()) <= set(grid) and set(r.C) <= set(grid)
    assert r.fold_C.shape == (2, 5)
    np.testing.assert_array_equal(r.probe.C, r.C)


def test_full_data_probe_and_directions() -> None:
    acts, labels, groups = planted(100, (5.0, 5.0))
    r = probe_layers(acts, labels, groups, FAST, layers=[4, 7], provenance={"stage": "base"})
    probe = fit_probe(acts, labels, C=1.0, layers=[4, 7])
    np.testing.assert_allclose(r.probe.coef, probe.coef, atol=1e-3)
    proba = probe.predict_proba(acts)
    assert proba.shape == (2, 200) and ((proba > 0.5) == (labels == 1)).mean() > 0.9
    for direction in (r.probe_direction, r.mean_direction):
        assert direction.layers == [4, 7] and direction.provenance["stage"] == "base"
        proj = direction.project(acts)
        assert (proj[:, labels == 1].mean(1) > proj[:, labels == 0].mean(1)).all()


def test_to_dict_is_json_safe() -> None:
    r = probe_layers(*planted(40, (1.0,)), ProbingConfig(n_bootstrap=50, n_folds=3))
    d = r.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["accuracy_lo"][0] <= d["accuracy"][0] <= d["accuracy_hi"][0]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda a, y, g: (a, np.ones_like(y), g), r"only class \[1\].*both classes \(0 and 1\)"),
        (lambda a, y, g: (a[:, :6], y[:6], g[:6]), r"3 groups cannot fill 5 folds"),
        (lambda a, y, g: (a, y * 2, g), r"labels must be 0/1.*map them to 0/1"),
        (lambda a, y, g: (a, y, g[:-1]), r"acts has 40 examples, labels 40, groups 39"),
        (
            lambda a, y, g: (a, y, np.where(y == 1, 0, np.arange(len(y)))),
            r"fold \d's (test|training) part holds only.*fewer folds",
        ),
    ],
    ids=["one-class", "too-few-groups", "labels-not-01", "length-mismatch", "one-class-fold"],
)
def test_bad_input_raises_with_the_fix(mutate, match: str) -> None:
    acts, labels, groups = mutate(*planted(20, (1.0,)))
    with pytest.raises(ValuetraceError, match=match):
        probe_layers(acts, labels, groups, FAST)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_activations_name_the_layer(bad: float) -> None:
    acts, labels, groups = planted(20, (1.0, 1.0, 1.0))
    acts[1, 3, 2] = bad
    with pytest.raises(ValuetraceError, match=r"NaN or inf at layers \[1\]"):
        probe_layers(acts, labels, groups, FAST)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_folds": 1}, r"probing\.n_folds is 1; it must be >= 2"),
        ({"C": -1.0}, r"probing\.C is -1\.0; it must be > 0"),
        ({"C": [0.1, float("inf")]}, r"probing\.C\[1\] is inf"),
        ({"C": [0.1, 1.0], "n_folds": 2}, r"probing\.n_folds is 2.*nested CV needs n_folds >= 3"),
        ({"ci": 95.0}, r"probing\.ci is 95\.0; it must be > 0 and < 1"),
        ({"n_bootstrap": 0}, r"probing\.n_bootstrap is 0; it must be >= 1"),
        ({"tol": 0.0}, r"probing\.tol"),
    ],
)
def test_settings_that_cannot_run_are_config_errors_naming_the_field(
    kwargs: dict, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        probe_layers(*planted(20, (1.0,)), ProbingConfig(**kwargs))


@pytest.fixture(scope="module")
def last_token_acts(tiny_model, tiny_tokenizer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Last-token pooled layers of a tiny Llama on responses that all end in '.' (layer 0 too)."""
    from valuetrace.activations.extract import pooled_hidden_states
    from valuetrace.activations.pooling import collate, encode

    animals = ["cat", "dog", "pig", "cow", "hen", "fox", "crow", "goat"]
    prompts = [f"Q: the {animals[i % 8]} {['rested', 'limped'][i // 8 % 2]}? A:" for i in range(32)]
    responses = [" the vet listened." if i % 2 else " the farmer watched." for i in range(32)]
    encoded = encode(tiny_tokenizer, prompts, responses, 64)
    batch = collate(encoded, tiny_tokenizer.pad_token_id, tiny_tokenizer.bos_token_id, "last")
    acts = pooled_hidden_states(tiny_model, batch, [0, 1, 2]).numpy()
    return acts, np.arange(32) % 2, np.arange(32) // 2


def test_a_constant_layer_is_undefined_and_every_other_layer_is_probed(
    tmp_path, last_token_acts
) -> None:
    from valuetrace.probing import load_results, save_results, transfer_matrix

    acts, labels, groups = last_token_acts
    assert (acts[0] == acts[0, :1]).all() and not (acts[1:] == acts[1:, :1]).all()
    config = ProbingConfig(n_folds=4, n_bootstrap=50)
    r = probe_layers(acts, labels, groups, config, layers=[0, 1, 2])
    alone = probe_layers(acts[1:], labels, groups, config, layers=[1, 2])
    assert list(r.undefined) == [0] and "same activation vector" in r.undefined[0]
    for name in ("accuracy", "auroc", "control_accuracy", "selectivity", "C"):
        value = getattr(r, name)
        assert np.isnan(value[0]), name
        np.testing.assert_allclose(value[1:], getattr(alone, name), atol=1e-6, err_msg=name)
    assert np.isnan(r.accuracy_ci[0]).all() and np.isnan(r.oof_scores[0]).all()
    assert np.isfinite(r.accuracy_ci[1:]).all() and np.isfinite(r.oof_scores[1:]).all()
    for direction in (r.probe_direction, r.mean_direction):
        assert list(direction.undefined) == [0] and np.isnan(direction.vectors[0]).all()
        np.testing.assert_allclose(np.linalg.norm(direction.vectors[1:], axis=1), 1, atol=1e-5)
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["accuracy"][0] is None and d["undefined"] == {"0": r.undefined[0]}
    save_results(r, tmp_path / "p.h5")
    loaded = load_results(tmp_path / "p.h5")
    assert (
        loaded.undefined
        == loaded.probe.undefined
        == loaded.mean_direction.undefined
        == {0: r.undefined[0]}
    )
    np.testing.assert_array_equal(loaded.accuracy, r.accuracy)
    varied = np.concatenate([acts[1:2], acts[1:]])  # a stage whose layer 0 varies
    probes = {"a": r.probe, "b": fit_probe(varied, labels, layers=[0, 1, 2])}
    transfer = transfer_matrix(probes, {"a": acts, "b": varied}, labels)
    for scores in (transfer.accuracy, transfer.auroc):
        assert np.isnan(scores[0, :, 0]).all()  # no probe of stage a at layer 0
        assert np.isfinite(scores[0, :, 1:]).all() and np.isfinite(scores[1]).all()
