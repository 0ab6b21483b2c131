"""Tests for analysis.causal: hooks edit exactly what they say, leave no trace; the
dose-response moves the margin the way the geometry says, with a slope and CI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.architectures import FAMILIES, family_model
from tests.conftest import hf_hidden_states
from valuetrace.activations.extract import pooled_hidden_states
from valuetrace.activations.pooling import Batch, collate, encode
from valuetrace.analysis.behaviour import ScoringSet
from valuetrace.analysis.causal import (
    CausalRecord,
    direction_hooks,
    dose_response,
    plot_dose_response,
    slope_score,
)
from valuetrace.analysis.logprob import continuation_logprob
from valuetrace.architecture import decoder_layers
from valuetrace.errors import ValuetraceError

TEXTS = [
    "The cat rested near the barn while the vet listened.",
    "The dog waited near the river.",
    "The goat slept near the road while the child helped.",
    "The hen limped near the barn.",
]
PROMPTS = [f"The {a} {v} near the" for a in ("cat", "dog", "fox", "cow") for v in ("sat", "slept")]


def _batch(tokenizer) -> Batch:
    encoded = encode(tokenizer, [""] * len(TEXTS), TEXTS, 64)
    return collate(encoded, tokenizer.pad_token_id, tokenizer.bos_token_id, "mean")


def _n_hooks(model) -> list[int]:
    """Hooks (forward and pre-forward) on each decoder block, where the residual stream lives."""
    return [len(b._forward_hooks) + len(b._forward_pre_hooks) for b in decoder_layers(model)]


def _unit(seed: int, d: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=d)
    return v / np.linalg.norm(v)


def test_ablate_leaves_no_component_along_u_at_every_position(tiny_model, tiny_tokenizer):
    d = tiny_model.config.hidden_size
    units = {layer: _unit(layer, d) for layer in (0, 1, 2)}
    batch = _batch(tiny_tokenizer)
    with direction_hooks(tiny_model, units, "ablate"):
        pooled = pooled_hidden_states(tiny_model, batch, [0, 1, 2])
        hidden = hf_hidden_states(tiny_model, batch)
    for layer, u in units.items():
        u_t = torch.tensor(u, dtype=torch.float32)
        assert (pooled[layer] @ u_t).abs().max() < 1e-5
    # hidden_states[-1] is after the final norm, so per-position checks stop before it.
    for layer in (0, 1):
        per_position = hidden[layer] @ torch.tensor(units[layer], dtype=torch.float32)
        assert per_position.abs().max() < 1e-5
        assert hidden[layer].abs().max() > 0.01


def test_ablate_at_one_layer_changes_only_that_layer_and_later(tiny_model, tiny_tokenizer):
    u = torch.tensor(_unit(3, tiny_model.config.hidden_size), dtype=torch.float32)
    batch = _batch(tiny_tokenizer)
    before = pooled_hidden_states(tiny_model, batch, [0, 1, 2])
    with direction_hooks(tiny_model, {1: u}, "ablate"):
        after = pooled_hidden_states(tiny_model, batch, [0, 1, 2])
    torch.testing.assert_close(after[0], before[0], rtol=0, atol=0)
    assert (before[1] @ u).abs().min() > 1e-4 and (after[1] @ u).abs().max() < 1e-5
    assert (after[2] @ u).abs().max() > 1e-3  # later blocks write along u again
    torch.testing.assert_close(after[1], before[1] - (before[1] @ u)[:, None] * u)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_add_shifts_the_projection_by_alpha_times_scale(tiny_model, tiny_tokenizer, layer):
    u = torch.tensor(_unit(10 + layer, tiny_model.config.hidden_size), dtype=torch.float32)
    batch = _batch(tiny_tokenizer)
    before = pooled_hidden_states(tiny_model, batch, [layer])[0]
    with direction_hooks(tiny_model, {layer: u}, "add", alpha=2.0, scale={layer: 0.75}):
        after = pooled_hidden_states(tiny_model, batch, [layer])[0]
    torch.testing.assert_close(after - before, 1.5 * u.expand_as(before), rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_0_edits_are_the_first_blocks_input_on_every_family(family, tiny_tokenizer):
    model = family_model(family, tiny_tokenizer)
    u = torch.tensor(_unit(5, model.config.hidden_size), dtype=torch.float32)
    batch = _batch(tiny_tokenizer)

    def first_input() -> torch.Tensor:  # HF's hidden_states[0]: what block 0 receives
        with torch.inference_mode():
            return model(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids,
                output_hidden_states=True,
            ).hidden_states[0]

    clean = first_input()
    with direction_hooks(model, {0: u}, "ablate"):
        ablated = first_input()
    with direction_hooks(model, {0: u}, "add", alpha=2.0, scale=0.5):
        added = first_input()
    assert (clean @ u).abs().max() > 1e-3
    assert (ablated @ u).abs().max() < 1e-5
    torch.testing.assert_close(added - clean, u.expand_as(clean), rtol=0, atol=1e-5)


def test_hooks_are_removed_on_exit_and_on_exceptions(tiny_model, tiny_tokenizer):
    batch = _batch(tiny_tokenizer)
    n_hooks = _n_hooks(tiny_model)
    u = _unit(4, tiny_model.config.hidden_size)

    def logits() -> torch.Tensor:
        with torch.inference_mode():
            return tiny_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits

    clean = logits()
    with direction_hooks(tiny_model, {0: u, 2: u}, "add", scale=5.0):
        assert _n_hooks(tiny_model) != n_hooks
        assert not torch.equal(logits(), clean)
    torch.testing.assert_close(logits(), clean, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="boom"), direction_hooks(tiny_model, {1: u}, "ablate"):
        raise RuntimeError("boom")
    assert _n_hooks(tiny_model) == n_hooks
    torch.testing.assert_close(logits(), clean, rtol=0, atol=0)


def _dose(model, tokenizer, u, alphas, scale, **kwargs):
    last = model.config.num_hidden_layers
    return dose_response(
        model,
        tokenizer,
        ScoringSet(
            PROMPTS,
            [" barn"] * 8,
            [" road"] * 8,
            PROMPTS[:3],
            [" barn while the vet listened."] * 3,
        ),
        direction=u,
        add_layer=last,
        ablate_layers=[last],
        scale=scale,
        alphas=alphas,
        labels=("sft", "mid", "compassion"),
        n_boot=200,
        **kwargs,
    )


def test_dose_response_along_the_unembedding_difference(tiny_model, tiny_tokenizer, tmp_path):
    c_id, d_id = (tiny_tokenizer(w, add_special_tokens=False).input_ids for w in (" barn", " road"))
    assert len(c_id) == len(d_id) == 1  # single tokens: the margin is one logit difference
    assert torch.equal(tiny_model.model.norm.weight, torch.ones_like(tiny_model.model.norm.weight))
    w_u = tiny_model.get_output_embeddings().weight.detach()
    u = (w_u[c_id[0]] - w_u[d_id[0]]).numpy()
    record = _dose(tiny_model, tiny_tokenizer, u, [2, -2, 0, -1, 1], 3.0, ci=0.9)
    assert [p.alpha for p in record.points] == [-2, -1, 0, 1, 2]
    unsteered = continuation_logprob(
        tiny_model, tiny_tokenizer, PROMPTS, [" barn"] * 8
    ) - continuation_logprob(tiny_model, tiny_tokenizer, PROMPTS, [" road"] * 8)
    zero = record.points[2]
    np.testing.assert_allclose(zero.margins, unsteered, atol=1e-6)
    assert zero.margin_change.value == 0
    # With a unit-weight final norm, logit(barn) - logit(road) is proportional to h·u: adding
    # along u raises every item's margin, and ablating u at the last layer zeroes it.
    means = [p.margin.value for p in record.points]
    assert means == sorted(means) and record.margin_slope.lo > 0
    assert record.margin_slope.lo <= record.margin_slope.value <= record.margin_slope.hi
    assert record.compassion_slope.value >= 0
    np.testing.assert_allclose(record.ablation.margins, 0.0, atol=1e-5)
    assert np.isnan(record.ablation.alpha) and record.ablation.compassion.value == 0
    assert record.points[-1].helpfulness_loss.value != zero.helpfulness_loss.value
    path = record.save(tmp_path / "causal.json")
    loaded = CausalRecord.load(path)
    assert np.isnan(loaded.ablation.alpha) and loaded.points == record.points
    assert plot_dose_response(record, tmp_path / "dose.png").stat().st_size > 1000


def test_slope_is_the_least_squares_fit_of_the_item_means():
    alphas = np.array([-2.0, 0.0, 1.0, 3.0])
    per_item = 0.25 * alphas[:, None] + np.arange(6)[None, :]  # every item slope 0.25
    slope = slope_score(alphas, per_item, n_boot=100, seed=0, ci=0.95)
    assert slope.value == pytest.approx(0.25)
    assert slope.lo == pytest.approx(0.25) and slope.hi == pytest.approx(0.25)


def test_bad_input_names_the_problem(tiny_model, tiny_tokenizer):
    d = tiny_model.config.hidden_size
    n_hooks = _n_hooks(tiny_model)
    cases = [
        ({1: np.ones(16)}, "ablate", 1.0, rf"shape \(16,\).*hidden size is {d}"),
        ({5: np.ones(d)}, "ablate", 1.0, r"layers are 0 \(embeddings\) to 2"),
        ({1: torch.zeros(d)}, "ablate", 1.0, "zero"),
        ({1: np.ones(d)}, "scale", 1.0, "mode must be"),
        ({1: np.ones(d), 2: np.ones(d)}, "add", {1: 1.0}, r"no entry for layer\(s\) \[2\]"),
        ({}, "ablate", 1.0, "no directions"),
    ]
    for directions, mode, scale, message in cases:
        with (
            pytest.raises(ValuetraceError, match=message),
            direction_hooks(tiny_model, directions, mode, scale=scale),
        ):
            pass
    with pytest.raises(ValuetraceError, match="must hold 0"):
        _dose(tiny_model, tiny_tokenizer, np.ones(d), [1.0, 2.0], 1.0)
    assert _n_hooks(tiny_model) == n_hooks
