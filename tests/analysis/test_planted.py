"""Tests for analysis.planted: the stream map's guarantee, the planted signal, and the three
self-test cases (weakening, rotation, drift) found at the planted layer, k = 1 and 2."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from valuetrace.activations.extract import n_layers
from valuetrace.activations.pooling import Encoded
from valuetrace.analysis.planted import planted_selftest, quiet_coordinates
from valuetrace.analysis.planted_edits import plant_markers, plant_stream_map
from valuetrace.architecture import residual_hooks
from valuetrace.errors import ValuetraceError
from valuetrace.models import load_model, load_tokenizer
from valuetrace.steps.selftest import default_layers, neutral_texts
from valuetrace.training.scratch import build_scratch_model

N_BLOCKS = 4
ANIMALS = ["cat", "dog", "pig", "cow", "hen", "fox"]
TEXTS = [
    f"The {animal} {verb} near the {place}" + (" while the vet listened." if i % 2 else ".")
    for i, (animal, verb, place) in enumerate(
        (a, v, p) for a in ANIMALS for v in ("rested", "slept") for p in ("barn", "river", "road")
    )
][:30]


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    """A randomly initialised 4-block Llama (hidden 48)."""
    return build_scratch_model(
        tiny_tokenizer,
        hidden_size=48,
        num_layers=N_BLOCKS,
        num_heads=4,
        intermediate_size=96,
        max_position_embeddings=128,
        seed=1,
    ).eval()


def _unit(seed: int, d: int) -> torch.Tensor:
    v = torch.from_numpy(np.random.default_rng(seed).normal(size=d)).float()
    return v / v.norm()


def _streams(model, input_ids: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every residual-stream layer at every position, and the logits, from one full forward."""
    out: list[torch.Tensor] = []
    readers = dict.fromkeys(range(n_layers(model)), out.append)
    with residual_hooks(model, readers), torch.inference_mode():
        logits = model(input_ids=input_ids).logits
    return out, logits


@pytest.mark.parametrize("from_layer", range(N_BLOCKS + 1))
def test_removal_zeroes_u_from_the_layer_on_and_keeps_earlier_layers(
    model, tiny_tokenizer, from_layer
):
    u = _unit(from_layer, model.config.hidden_size)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.tensor([tiny_tokenizer(TEXTS[1]).input_ids])
    original, logits = _streams(model, ids)
    removal = np.eye(u.numel()) - np.outer(u.numpy(), u.numpy())
    edited_model = plant_stream_map(model, removal, from_layer)
    edited, _ = _streams(edited_model, ids)

    for layer, (h, h_edit) in enumerate(zip(original, edited, strict=True)):
        if layer < from_layer:
            assert torch.equal(h_edit, h)
        else:
            assert (h @ u).abs().max() > 1e-3  # the original does carry u here
            assert (h_edit @ u).abs().max() < 1e-5 * h_edit.abs().max()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(isinstance(b, LlamaDecoderLayer) for b in edited_model.model.layers)
    if from_layer == 0:  # the head is untied and keeps its original read-out
        embedding = edited_model.get_input_embeddings().weight
        assert edited_model.lm_head.weight is not embedding
        torch.testing.assert_close(edited_model.lm_head.weight, model.lm_head.weight)
        assert (embedding @ u).abs().max() < 1e-6
    _, logits_again = _streams(model, ids)
    assert torch.equal(logits_again, logits)


def test_planted_pairs_differ_only_by_two_a_u_at_the_marker(model, tiny_tokenizer):
    u = _unit(7, model.config.hidden_size)
    markers, strength = (5, 6), 4.0
    planted = plant_markers(model, u.numpy()[None].astype(np.float64), {0: markers}, strength)
    a = strength * model.get_input_embeddings().weight.norm(dim=1).median()
    ids = tiny_tokenizer(TEXTS[3]).input_ids
    pair = torch.tensor([[*ids, markers[0]], [*ids, markers[1]]])
    for h in _streams(planted, pair)[0]:
        diff = h[1] - h[0]
        assert diff[:-1].abs().max() < 1e-5
        torch.testing.assert_close(diff[-1], 2 * a * u, rtol=0, atol=1e-4)
        torch.testing.assert_close(h[0, -1].norm(), h[1, -1].norm())


@pytest.fixture(scope="module")
def selftest_results(model, tiny_tokenizer):
    return planted_selftest(model, tiny_tokenizer, TEXTS, [1, 2], model_name="tiny", seed=3)


@pytest.mark.parametrize("case", ["weakening", "rotation", "drift"])
def test_each_planted_case_is_found_at_its_layer(selftest_results, case):
    found = [r for r in selftest_results if r.case == case]
    assert [r.planted_layer for r in found] == [1, 2]
    for r in found:
        assert r.passed, r.detail
        assert r.found_layer == r.planted_layer and r.model == "tiny"
        assert json.loads(json.dumps(asdict(r)))["found_layer"] == r.planted_layer


def test_quiet_coordinates_leave_out_a_massive_one(model, tiny_tokenizer):
    loud = plant_markers(model, np.eye(model.config.hidden_size)[:1], {0: (5, 6)}, 4.0)
    with torch.no_grad():
        loud.get_input_embeddings().weight[:, 7] = 1e4  # every token, carried by the residual
    ids = [tiny_tokenizer(t).input_ids for t in TEXTS]
    encoded = [Encoded(ids=i, response=[True] * len(i)) for i in ids]
    assert quiet_coordinates(model, encoded, tiny_tokenizer, 8).all()
    quiet = quiet_coordinates(loud, encoded, tiny_tokenizer, 8)
    assert not quiet[7] and quiet.sum() == model.config.hidden_size - 1


@pytest.mark.slow
def test_every_case_passes_on_smollm2(smollm2_checkpoint):
    """The issue's real model, at its default planted layers (10 and 20 of 30 blocks)."""
    model = load_model(str(smollm2_checkpoint), device="cpu")
    tokenizer = load_tokenizer(str(smollm2_checkpoint))
    results = planted_selftest(
        model, tokenizer, neutral_texts(40), default_layers(30), model_name="smollm2"
    )
    assert [(r.case, r.planted_layer) for r in results] == [
        (case, k) for case in ("weakening", "rotation", "drift") for k in (10, 20)
    ]
    for r in results:
        assert r.passed and r.found_layer == r.planted_layer, r.detail


def test_bad_input_names_the_problem(model, tiny_tokenizer):
    d = model.config.hidden_size
    with pytest.raises(ValuetraceError, match=r"layers are 0 \(embeddings\) to 4"):
        plant_stream_map(model, np.zeros((d, d)), 5)
    with pytest.raises(ValuetraceError, match=rf"shape \(16, 16\).*hidden size is {d}"):
        plant_stream_map(model, np.eye(16), 1)
    with pytest.raises(ValuetraceError, match="identity"):
        plant_stream_map(model, np.eye(d), 1)
    with pytest.raises(ValuetraceError, match="orthonormal"):
        plant_markers(model, np.ones((2, d)), {0: (5, 6)}, 4.0)
    with pytest.raises(ValuetraceError, match="at least 10 distinct"):
        planted_selftest(model, tiny_tokenizer, TEXTS[:3] * 5, [1])
    with pytest.raises(ValuetraceError, match=r"factor must lie in \(0, 1\)"):
        planted_selftest(model, tiny_tokenizer, TEXTS, [1], factor=1.5)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50))
    with pytest.raises(ValuetraceError, match="Llama-style"):
        plant_stream_map(gpt2, np.eye(16), 1)
