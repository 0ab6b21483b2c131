"""Planted self-tests: edit a model so that a concept weakens, rotates or drifts from a known
layer on, run the analysis, and check that it names what was planted, where it was planted.

The planted model is built from the given one (pre-norm Llama-style blocks). Every block is
made blind to a small subspace S of the residual stream (RMSNorm weights folded into the
q/k/v and gate/up reads, which are then projected off S) and writes nothing into it (o_proj
and down_proj projected off S), so whatever the embeddings put in S is carried unchanged to
every layer. Inside S: every token row gets independent Gaussian components (the within-class
spread), and two marker tokens per concept get rows c - a·u and c + a·u (c ⊥ S). Each example
is a neutral text with one marker appended, so the two members of a pair differ by exactly 2a·u
at the marker, at every layer, and nowhere else.

A *stream map* M (identity outside S) is then applied to the residual stream from layer k on:

- weakening: u -> f·u + sqrt(1 - f²)·z (z ∈ S carries only spread): the class gap shrinks by f
  while the spread along u stays the same, so the concept's separation drops by about f;
- rotation: u -> v, v -> -u (v ∈ S): the concept moves to an orthogonal direction with the same
  strength, spread included, so its separation along its own direction is unchanged;
- drift: the weakening map applied to the compassion direction *and* to the control concept's
  (planted with the same geometry: its spread copies the concept's).

The analysis (`compare_stages`, `concentration_index`) must then find weakening first at k with
no rotation; rotation first at k with no weakening; and, for drift, a concentration index whose
interval covers 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Bool, Float
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.activations.extract import n_layers, pooled_hidden_states
from valuetrace.activations.pooling import Encoded, collate, encode
from valuetrace.activations.prefix import reuses_prefixes
from valuetrace.analysis.findings import Concentration, concentration_index
from valuetrace.analysis.localize import compare_stages
from valuetrace.analysis.planted_edits import (
    check_from_layer,
    llama_blocks,
    plant_markers,
    plant_stream_map,
)
from valuetrace.analysis.stage_comparison import StageComparison
from valuetrace.errors import DataError
from valuetrace.probing.folds import grouped_folds

Case = Literal["weakening", "rotation", "drift"]
CASES: tuple[Case, ...] = ("weakening", "rotation", "drift")
_MIN_TEXTS = 10
# Rows of the planted subspace basis: the concept, its rotation target, its spread source,
# the control concept and the control's spread source.
_U, _V, _Z, _W, _ZW = range(5)


def case_map(case: Case, basis: Float[np.ndarray, "5 d"], factor: float) -> np.ndarray:
    """The stream map [d, d] of a planted case, over the basis (u, v, z, w, z_w)."""
    q = np.asarray(basis, dtype=np.float64)
    m = np.eye(q.shape[1])

    def shrink(u: np.ndarray, z: np.ndarray) -> np.ndarray:
        return -(1 - factor) * np.outer(u, u) + np.sqrt(1 - factor**2) * np.outer(u, z)

    if case == "weakening":
        return m + shrink(q[_U], q[_Z])
    if case == "rotation":
        u, v = q[_U], q[_V]
        return m - np.outer(u, u) - np.outer(v, v) + np.outer(v, u) - np.outer(u, v)
    if case == "drift":
        return m + shrink(q[_U], q[_Z]) + shrink(q[_W], q[_ZW])
    raise DataError(f"unknown self-test case {case!r}; use one of {list(CASES)}.")


@dataclass(frozen=True)
class SelfTestCase:
    """One planted case at one layer: what was planted, what the analysis found, pass/fail."""

    case: Case
    model: str
    planted_layer: int
    found_layer: int | None
    passed: bool
    detail: str


def _pooled(
    model: PreTrainedModel,
    encoded: list[Encoded],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
) -> Float[np.ndarray, "l n d"]:
    """Mean-pooled activations of every layer for `encoded`, in order."""
    layers = list(range(n_layers(model)))
    pad, bos = tokenizer.pad_token_id, tokenizer.bos_token_id
    share = reuses_prefixes(model)
    parts = []
    for start in range(0, len(encoded), batch_size):
        batch = collate(encoded[start : start + batch_size], pad, bos, "mean")
        parts.append(pooled_hidden_states(model, batch, layers, share=share).cpu())
    return torch.cat(parts, dim=1).numpy().astype(np.float64)


@torch.no_grad()
def quiet_coordinates(
    model: PreTrainedModel,
    encoded: list[Encoded],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    ratio: float = 10.0,
) -> Bool[np.ndarray, " d"]:
    """Mask [d] of residual-stream coordinates whose RMS over every layer and real token is at
    most `ratio` × the median coordinate's: the planted subspace avoids the rest.

    Why: massive activations (Sun et al. 2024, "Massive Activations in Large Language Models")
    reach ~25,000 on one SmolLM2-135M coordinate, and elementwise rounding there (the RMSNorm
    casts to float32) is larger than the class gap's share of it, so a subspace that touches
    them leaks the concept out of S.
    """
    device = next(model.parameters()).device
    total = torch.zeros(model.config.hidden_size, dtype=torch.float64)
    count = 0
    for start in range(0, len(encoded), batch_size):
        batch = collate(encoded[start : start + batch_size], tokenizer.pad_token_id, None, "mean")
        out = model.base_model(
            input_ids=batch.input_ids.to(device),
            attention_mask=batch.attention_mask.to(device),
            position_ids=batch.position_ids.to(device),
            output_hidden_states=True,
            use_cache=False,
        )
        real = batch.attention_mask.bool().to(device)
        for hidden in out.hidden_states:
            total += hidden[real].double().pow(2).sum(0).cpu()
            count += int(real.sum())
    rms = (total / count).sqrt().numpy()
    return rms <= ratio * np.median(rms)


def _judge(
    case: Case, k: int, comparison: StageComparison, index: Concentration
) -> tuple[int | None, bool, str]:
    """The found layer, whether the case passed, and a one-line account."""
    weak = comparison.encoded.first_drop.layer
    rot = comparison.rotation.first_drop.layer
    any_weak = any(comparison.encoded.drop_found)
    any_rot = any(comparison.rotation.drop_found)
    o = index.overall
    if case == "weakening":
        ok = weak == k and not any_rot
        return (
            weak,
            ok,
            f"first weakening {weak}, rotation flagged: {any_rot}; concentration index "
            f"{o.value:.3f} [{o.lo:.3f}, {o.hi:.3f}]",
        )
    if case == "rotation":
        ok = rot == k and not any_weak
        return rot, ok, f"first rotation {rot}, weakening flagged: {any_weak}"
    # The overall index is what the summary's "domain-concentrated" rests on. Its per-layer
    # intervals are pointwise (about 1 in 20 misses 0 by chance), so they are counted, not judged.
    missed = sum(not v.covers_zero() for v in index.per_layer)
    return (
        weak,
        weak == k and o.covers_zero(),
        f"first weakening {weak}; concentration index {o.value:.3f} [{o.lo:.3f}, {o.hi:.3f}] "
        f"(pointwise layer intervals excluding 0: {missed} of {len(index.per_layer)})",
    )


def planted_selftest(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    from_layers: Sequence[int],
    *,
    model_name: str = "model",
    cases: Sequence[Case] = CASES,
    factor: float = 0.3,
    strength: float = 4.0,
    n_folds: int = 5,
    n_boot: int = 1000,
    alpha: float = 0.05,
    ci: float = 0.95,
    seed: int = 0,
    batch_size: int = 32,
    max_length: int = 128,
    dtype: torch.dtype = torch.float64,
) -> list[SelfTestCase]:
    """Plant each case at each layer k in `from_layers`, run the analysis, and judge it.

    Each text makes two compassion pairs' worth of examples: text + class-0 / class-1 marker of
    the concept, and of a control concept (mean-pooled, every layer). The planted model is
    stage A; the model with the case's stream map from layer k is stage B.

    The construction needs blocks that are blind to S, which rounding breaks where the
    residual stream is large: S avoids coordinates with massive activations
    (`quiet_coordinates`), and the planted copies run in `dtype` (float64 by default).

    Raises:
        DataError: fewer than 10 distinct texts, no free marker tokens, a bad layer, a factor
            outside (0, 1), or a model that is not Llama-style.
    """
    blocks = llama_blocks(model)
    for k in from_layers:
        check_from_layer(k, len(blocks))
    if not 0 < factor < 1:
        raise DataError(f"factor must lie in (0, 1) (the share of the gap kept); got {factor}.")
    if len(set(texts)) < _MIN_TEXTS:
        raise DataError(
            f"the self-test needs at least {_MIN_TEXTS} distinct neutral texts (one pair each, "
            f"grouped folds over pairs); got {len(set(texts))}."
        )
    texts = list(dict.fromkeys(texts))
    encoded = encode(tokenizer, [""] * len(texts), texts, max_length - 1)
    used = {i for e in encoded for i in e.ids} | set(tokenizer.all_special_ids)
    free = sorted(set(range(model.get_input_embeddings().num_embeddings)) - used)
    if len(free) < 4:
        raise DataError(
            "fewer than 4 token ids are unused by the texts, so none are free to act as "
            "markers; pass fewer or shorter texts."
        )
    rng = np.random.default_rng(seed)
    marks = [int(i) for i in rng.choice(free, size=4, replace=False)]
    quiet = quiet_coordinates(model, encoded, tokenizer, batch_size)
    draw = rng.normal(size=(model.config.hidden_size, 5)) * quiet[:, None]
    basis = np.linalg.qr(draw)[0].T  # orthonormal rows u, v, z, w, z_w, off massive coordinates
    planted = (
        plant_markers(
            model,
            basis,
            {_U: (marks[0], marks[1]), _W: (marks[2], marks[3])},
            strength,
            shared_spread={
                _W: _U,
                _ZW: _Z,
            },  # the control concept: the same geometry as the concept
            seed=seed,
        )
        .to(dtype)
        .eval()
    )

    def examples(m0: int, m1: int) -> list[Encoded]:
        return [
            Encoded(ids=[*e.ids, m], response=[*e.response, True])
            for e in encoded
            for m in (m0, m1)
        ]

    sets = {"concept": examples(marks[0], marks[1]), "control": examples(marks[2], marks[3])}
    labels = np.tile([0, 1], len(encoded))
    groups = np.repeat(np.arange(len(encoded)), 2)
    folds = grouped_folds(groups, n_folds, seed, labels=labels)
    base = {k: _pooled(planted, v, tokenizer, batch_size) for k, v in sets.items()}
    out = []
    for case in cases:
        for k in from_layers:
            edited = plant_stream_map(planted, case_map(case, basis, factor), k).eval()
            results = {}
            for offset, (name, ex) in enumerate(sets.items()):
                results[name] = compare_stages(
                    base[name],
                    _pooled(edited, ex, tokenizer, batch_size),
                    labels,
                    groups,
                    folds,
                    stage_a="planted",
                    stage_b=f"{case} from layer {k}",
                    n_boot=n_boot,
                    alpha=alpha,
                    ci=ci,
                    seed=seed + offset,
                )
            index = concentration_index(
                "concept",
                "concept - control",
                "",
                ("concept", *results["concept"]),
                ("control", *results["control"]),
                ci,
            )
            found, passed, detail = _judge(case, k, results["concept"][0], index)
            out.append(SelfTestCase(case, model_name, k, found, passed, detail))
    return out
