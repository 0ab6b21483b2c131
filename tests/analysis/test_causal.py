"""Tests for analysis.causal: hooks edit exactly what they say, leave no trace, move scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from valuetrace.activations.extract import pooled_hidden_states
from valuetrace.activations.pooling import Batch, collate, encode
from valuetrace.analysis.causal import causal_effect, direction_hooks, residual_modules

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


def _unit(seed: int, d: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=d)
    return v / np.linalg.norm(v)


def test_ablate_leaves_no_component_along_u_at_every_position(tiny_model, tiny_tokenizer):
    d = tiny_model.config.hidden_size
    units = {layer: _unit(layer, d) for layer in (0, 1, 2)}
    batch = _batch(tiny_tokenizer)
    with direction_hooks(tiny_model, units, "ablate"):
        pooled = pooled_hidden_states(tiny_model, batch, [0, 1, 2])
        with torch.inference_mode():
            hidden = tiny_model(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids,
                output_hidden_states=True,
            ).hidden_states
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


def test_hooks_are_removed_on_exit_and_on_exceptions(tiny_model, tiny_tokenizer):
    batch = _batch(tiny_tokenizer)
    modules = residual_modules(tiny_model)
    n_hooks = [len(m._forward_hooks) for m in modules]
    u = _unit(4, tiny_model.config.hidden_size)

    def logits() -> torch.Tensor:
        with torch.inference_mode():
            return tiny_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits

    clean = logits()
    with direction_hooks(tiny_model, {0: u, 2: u}, "add", scale=5.0):
        assert [len(m._forward_hooks) for m in modules] != n_hooks
        assert not torch.equal(logits(), clean)
    torch.testing.assert_close(logits(), clean, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="boom"), direction_hooks(tiny_model, {1: u}, "ablate"):
        raise RuntimeError("boom")
    assert [len(m._forward_hooks) for m in modules] == n_hooks
    torch.testing.assert_close(logits(), clean, rtol=0, atol=0)


def test_ablating_the_unembedding_difference_erases_the_preference(tiny_model, tiny_tokenizer):
    c_id, d_id = (tiny_tokenizer(w, add_special_tokens=False).input_ids for w in (" barn", " road"))
    assert len(c_id) == len(d_id) == 1  # single tokens: the margin is one logit difference
    assert torch.equal(tiny_model.model.norm.weight, torch.ones_like(tiny_model.model.norm.weight))
    w_u = tiny_model.get_output_embeddings().weight.detach()
    u = (w_u[c_id[0]] - w_u[d_id[0]]).numpy()
    last = tiny_model.config.num_hidden_layers
    args = (tiny_model, tiny_tokenizer, PROMPTS, [" barn"] * 8, [" road"] * 8, {last: u})

    ablated = causal_effect(*args, "ablate", n_boot=200)
    # With a unit-weight final norm, logit(barn) - logit(road) is proportional to h·u.
    assert np.abs(ablated.preference_base).min() > 1e-3
    np.testing.assert_allclose(ablated.preference_intervened, 0.0, atol=1e-5)
    assert ablated.scale is None and ablated.layers == [last]

    added = causal_effect(*args, "add", alpha=1.0, scale=50.0, n_boot=200, seed=1)
    assert added.intervened.value == 1.0
    assert added.change.value == pytest.approx(1.0 - added.baseline.value)
    assert added.change.lo <= added.change.value <= added.change.hi
    assert added.margin_change.lo > 0
    assert (np.array(added.preference_intervened) > np.array(added.preference_base)).all()
    assert json.loads(json.dumps(added.to_dict()))["scale"] == {str(last): 50.0}


def test_bad_input_names_the_problem(tiny_model, tiny_tokenizer):
    d = tiny_model.config.hidden_size
    n_hooks = [len(m._forward_hooks) for m in residual_modules(tiny_model)]
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
    with pytest.raises(ValuetraceError, match="equal length"):
        causal_effect(tiny_model, tiny_tokenizer, ["a"], [" b"], [], {1: np.ones(d)}, "ablate")
    assert [len(m._forward_hooks) for m in residual_modules(tiny_model)] == n_hooks
