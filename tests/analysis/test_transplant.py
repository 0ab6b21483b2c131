"""Tests for analysis.transplant: a child that equals its parent has nothing to recover; a child
planted off its parent along one direction at one layer gets all of it back from a patch along
that direction (every item's margin equal to the parent's) and none from random directions or
from a patch along another direction; bad input is refused by name."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from valuetrace.analysis.behaviour import ScoringSet
from valuetrace.analysis.transplant import TransplantRecord, recovery, transplant
from valuetrace.analysis.transplant_patch import record_parent
from valuetrace.analysis.transplant_plan import PlannedTransplant
from valuetrace.errors import DataError
from valuetrace.training.scratch import build_scratch_model

PROMPTS = [
    f"The {a} {v} near the"
    for a in ("cat", "dog", "fox", "cow", "pig", "hen")
    for v in ("sat", "slept")
]
# Two continuations per prompt: the scorer runs each prompt once as a shared prefix, so the
# patch must line up across the prefix and the rows' own forwards.
ROWS = ScoringSet(
    PROMPTS,
    [" barn while the vet listened."] * len(PROMPTS),
    [" road while the farmer watched."] * len(PROMPTS),
    PROMPTS[:2],
    [" barn."] * 2,
)
PLAN = PlannedTransplant("parent", "child", ["counter-value arm"], [1], True)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def _margin_direction(model, tokenizer) -> torch.Tensor:
    """The unembedding difference of ' barn' and ' road': moving along it moves the margin."""
    w = model.get_output_embeddings().weight.detach()
    barn, road = (tokenizer(x, add_special_tokens=False).input_ids[0] for x in (" barn", " road"))
    return _unit(w[barn] - w[road])


def _planted_child(model, direction: torch.Tensor, size: float):
    """The parent with block 0's MLP writing `size` × `direction` at every position: the
    child's layer 1 differs from the parent's along `direction` only, and nothing else does."""
    child = copy.deepcopy(model)
    old = child.model.layers[0].mlp.down_proj
    new = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        new.weight.copy_(old.weight)
        new.bias.copy_(size * direction)
    child.model.layers[0].mlp.down_proj = new
    return child.eval()


def _run(parent, child, tokenizer, direction, **kwargs):
    stream = record_parent(
        parent, tokenizer, ROWS, {1: direction}, stage="parent", n_controls=3, seed=0
    )
    return transplant(child, tokenizer, ROWS, stream, PLAN, n_boot=300, **kwargs)


def test_a_child_equal_to_its_parent_has_nothing_to_recover(tiny_model, tiny_tokenizer, tmp_path):
    u = _margin_direction(tiny_model, tiny_tokenizer)
    result = _run(tiny_model, copy.deepcopy(tiny_model), tiny_tokenizer, u)
    assert result.change.value == 0 and result.change.covers_zero()
    assert not result.recoverable and result.recovery is None
    assert result.patch_effect.value == pytest.approx(0, abs=1e-6)
    assert result.n_items == len(PROMPTS) and len(result.margins_control) == 3
    path = TransplantRecord("compassion", 0.95, 300, 0, [result], []).save(tmp_path / "t.json")
    assert TransplantRecord.load(path).results == [result]


def test_a_patch_along_the_planted_direction_recovers_all_of_it(tiny_model, tiny_tokenizer):
    u = _margin_direction(tiny_model, tiny_tokenizer)
    result = _run(tiny_model, _planted_child(tiny_model, u, -1.0), tiny_tokenizer, u, ci=0.9)
    assert result.recoverable and result.change.hi < 0  # the plant lowered every margin
    # Patched at every position of the prefix and own forwards, the child is its parent again.
    np.testing.assert_allclose(result.margins_patched, result.margins_parent, atol=1e-5)
    rec = result.recovery
    assert rec is not None
    assert rec.direction.value == pytest.approx(1, abs=1e-4)
    assert rec.direction.lo <= rec.direction.value <= rec.direction.hi
    assert rec.direction.hi - rec.direction.lo < 1e-3
    # Random directions orthogonal to u: the child's layer 1 equals the parent's along them.
    assert abs(rec.control.value) < 1e-4 and rec.excess.lo > 0.99
    np.testing.assert_allclose(result.margins_control, [result.margins_child] * 3, atol=1e-5)


def test_a_patch_along_another_direction_recovers_nothing(tiny_model, tiny_tokenizer):
    u = _margin_direction(tiny_model, tiny_tokenizer)
    other = torch.randn(u.shape[0], generator=torch.Generator().manual_seed(1))
    w = _unit(other - (other @ u) * u)  # planted along u, patched along w (w ⊥ u)
    result = _run(tiny_model, _planted_child(tiny_model, u, -1.0), tiny_tokenizer, w)
    rec = result.recovery
    assert result.recoverable and rec is not None
    assert abs(rec.direction.value) < 1e-4 and rec.direction.covers_zero()
    np.testing.assert_allclose(result.margins_patched, result.margins_child, atol=1e-5)


def test_recovery_is_the_ratio_of_mean_changes_with_a_paired_ci():
    rng = np.random.default_rng(0)
    parent = rng.normal(1.0, 0.1, size=50)
    child = parent - 0.5 + rng.normal(0, 0.05, size=50)
    patched = child + 0.25 * (parent - child)  # a quarter back on every item
    control = np.stack([child, child + 0.05 * (parent - child)])
    rec = recovery(parent, child, patched, control, n_boot=500, seed=0, ci=0.95)
    assert rec.direction.value == pytest.approx(0.25)
    assert rec.direction.lo == pytest.approx(0.25) and rec.direction.hi == pytest.approx(0.25)
    assert rec.control.value == pytest.approx(0.025)
    assert rec.excess.value == pytest.approx(0.225)


def test_bad_input_names_the_problem(tiny_model, tiny_tokenizer):
    u = _margin_direction(tiny_model, tiny_tokenizer)
    with pytest.raises(DataError, match=r"layers \[5\].*layers are 0 \(embeddings\) to 2"):
        record_parent(tiny_model, tiny_tokenizer, ROWS, {5: u}, stage="p", n_controls=1, seed=0)
    with pytest.raises(DataError, match=r"shape \(16,\).*hidden size is 32"):
        record_parent(
            tiny_model, tiny_tokenizer, ROWS, {1: torch.ones(16)}, stage="p", n_controls=1, seed=0
        )
    with pytest.raises(DataError, match="at least 1 direction"):
        record_parent(tiny_model, tiny_tokenizer, ROWS, {1: u}, stage="p", n_controls=0, seed=0)
    stream = record_parent(
        tiny_model, tiny_tokenizer, ROWS, {1: u}, stage="p", n_controls=1, seed=0
    )
    narrow = build_scratch_model(
        tiny_tokenizer,
        hidden_size=16,
        num_layers=2,
        num_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        seed=0,
    ).eval()
    with pytest.raises(DataError, match=r"hidden width 16.*fine-tuned from the parent"):
        transplant(narrow, tiny_tokenizer, ROWS, stream, PLAN)
    fewer = ScoringSet(PROMPTS[:4], [" barn."] * 4, [" road."] * 4)
    with pytest.raises(DataError, match="4 eval items for the child, 12 for the parent"):
        transplant(copy.deepcopy(tiny_model), tiny_tokenizer, fewer, stream, PLAN)
    other = ScoringSet(PROMPTS, [" road."] * len(PROMPTS), [" barn."] * len(PROMPTS))
    with pytest.raises(DataError, match="does not match the parent's"):
        transplant(copy.deepcopy(tiny_model), tiny_tokenizer, other, stream, PLAN)
