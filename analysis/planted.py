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

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Bool, Float
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.activations.extract import n_layers, pooled_hidden_states
from valuetrace.activations.pooling import Encoded, collate, encode
from valuetrace.activations.prefix import reuses_prefixes
from valuetrace.analysis.findings import Concentration, concentration_index
from valuetrace.analysis.localize import StageComparison, compare_stages
from valuetrace.architecture import decoder_layers
from valuetrace.errors import DataError
from valuetrace.probing.folds import grouped_folds

Case = Literal["weakening", "rotation", "drift"]
CASES: tuple[Case, ...] = ("weakening", "rotation", "drift")
_BLOCK_PARTS = {"self_attn", "mlp", "input_layernorm", "post_attention_layernorm"}
_READS = {
    "input_layernorm": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "post_attention_layernorm": ("mlp.gate_proj", "mlp.up_proj"),
}
_WRITES = ("self_attn.o_proj", "mlp.down_proj")
_MIN_TEXTS = 10
# Rows of the planted subspace basis: the concept, its rotation target, its spread source,
# the control concept and the control's spread source.
_U, _V, _Z, _W, _ZW = range(5)


def _llama_blocks(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The decoder blocks, checked to be pre-norm Llama-style (Llama, Mistral, Qwen2)."""
    blocks = decoder_layers(model)
    for block in blocks:
        parts = {name for name, _ in block.named_children()}
        if parts != _BLOCK_PARTS:
            raise DataError(
                f"{type(block).__name__} has parts {sorted(parts)}; the planted self-test edits "
                f"pre-norm Llama-style blocks with exactly {sorted(_BLOCK_PARTS)} (Llama, "
                "Mistral, Qwen2). Run it on such a model."
            )
    return blocks


def _check_from_layer(from_layer: int, n_blocks: int) -> None:
    """Fail unless `from_layer` is a residual-stream layer of a model with `n_blocks` blocks."""
    if not 0 <= from_layer <= n_blocks:
        raise DataError(
            f"from_layer {from_layer} does not exist: this model has {n_blocks} blocks, so layers "
            f"are 0 (embeddings) to {n_blocks}."
        )


def _orthonormal(vectors: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis [k, d] (float64) of the span of the rows of `vectors` (rank k)."""
    _, s, vh = torch.linalg.svd(vectors.double(), full_matrices=False)
    keep = s > 1e-9 * s.max()
    return vh[keep]


def _complement(basis: torch.Tensor) -> torch.Tensor:
    """I - QᵀQ in float64, the projector onto the complement of the rows' span."""
    q = basis.double()
    return torch.eye(q.shape[1], dtype=torch.float64) - q.T @ q


@torch.no_grad()
def _set(param: torch.Tensor, value: torch.Tensor) -> None:
    """Overwrite a weight in place (keeping dtype, device and any tying)."""
    param.copy_(value.to(device=param.device, dtype=param.dtype))


def _project_writes(block: torch.nn.Module, proj: torch.Tensor) -> None:
    """Make `block` write nothing into S: its o_proj and down_proj outputs go through proj."""
    for name in _WRITES:
        linear = block.get_submodule(name)
        _set(linear.weight, proj @ linear.weight.detach().cpu().double())
        if linear.bias is not None:
            _set(linear.bias, proj @ linear.bias.detach().cpu().double())


def _blind_reads(block: torch.nn.Module, proj: torch.Tensor) -> None:
    """Make `block` unable to read S: fold each RMSNorm weight into its reads, then project."""
    for norm_name, read_names in _READS.items():
        norm = block.get_submodule(norm_name)
        gain = torch.diag(norm.weight.detach().cpu().double())
        for name in read_names:
            linear = block.get_submodule(name)
            _set(linear.weight, linear.weight.detach().cpu().double() @ gain @ proj)
        _set(norm.weight, torch.ones_like(norm.weight))


class _MapsStream:
    """Mixin for a decoder block: its hidden-state output goes through the buffer `stream_map`."""

    stream_map: torch.Tensor

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The block's own forward, then h <- M h on its hidden-state output."""
        output = super().forward(*args, **kwargs)  # type: ignore[misc]
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden @ self.stream_map.to(hidden.dtype).T
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@functools.cache
def _mapping_class(block_class: type) -> type:
    """A subclass of `block_class` that maps its output (isinstance still holds)."""
    return type(f"StreamMapped{block_class.__name__}", (_MapsStream, block_class), {})


def plant_stream_map(
    model: PreTrainedModel, matrix: Float[np.ndarray, "d d"], from_layer: int
) -> PreTrainedModel:
    """A copy of `model` whose residual stream is h -> M h at layer `from_layer`, and whose
    later blocks write nothing into the subspace M acts on (so the map persists).

    Layers before `from_layer` are bit-identical to the original. For `from_layer` = 0 the
    embedding matrix is mapped instead (E <- E Mᵀ, a pure weight edit, the LM head untied so
    the logits keep their read-out): layer 0, the first block's input, is the embedding row
    times a constant in the Llama-style blocks accepted here (1 in Llama, Mistral and Qwen2,
    Granite's `embedding_multiplier`), so it is mapped by M. Otherwise block `from_layer - 1`
    applies M to its output (a non-persistent buffer `stream_map`: `save_pretrained` keeps
    only the weight edits).
    M = I - uuᵀ removes direction u from `from_layer` on.

    Raises:
        DataError: the model is not Llama-style, the layer does not exist, or M is not
            [hidden_size, hidden_size].
    """
    blocks = _llama_blocks(model)
    _check_from_layer(from_layer, len(blocks))
    d = model.config.hidden_size
    m = torch.as_tensor(np.asarray(matrix, dtype=np.float64))
    if m.shape != (d, d):
        raise DataError(
            f"the stream map has shape {tuple(m.shape)} but the model's hidden size is {d}; "
            f"pass a [{d}, {d}] matrix."
        )
    moved = m - torch.eye(d, dtype=torch.float64)
    if not moved.abs().max() > 0:
        raise DataError("the stream map is the identity: it plants nothing (zero edit).")
    proj = _complement(_orthonormal(torch.cat([moved, moved.T])))
    edited = copy.deepcopy(model)
    edited_blocks = decoder_layers(edited)
    if from_layer == 0:
        embedding = edited.get_input_embeddings().weight
        head = edited.get_output_embeddings()
        if head is not None and head.weight is embedding:
            head.weight = torch.nn.Parameter(embedding.detach().clone())
            edited.config.tie_word_embeddings = False
        _set(embedding, embedding.detach().cpu().double() @ m.T)
    else:
        block = edited_blocks[from_layer - 1]
        block.__class__ = _mapping_class(type(block))
        weight = next(block.parameters())
        block.register_buffer(
            "stream_map", m.to(device=weight.device, dtype=weight.dtype), persistent=False
        )
    for block in edited_blocks[from_layer:]:
        _project_writes(block, proj)
    return edited


def plant_markers(
    model: PreTrainedModel,
    basis: Float[np.ndarray, "s d"],
    markers: dict[int, tuple[int, int]],
    strength: float,
    *,
    spread: float = 0.25,
    shared_spread: dict[int, int] | None = None,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> PreTrainedModel:
    """A copy of `model` blind to span(basis), with marker tokens that differ only inside it.

    `markers` maps a basis row i to the (class 0, class 1) token ids whose rows become
    c - a·basis[i] and c + a·basis[i] (c ⊥ S, the same for every marker; a = strength × median
    embedding row norm). Every
    other token row gets independent N(0, (spread·a)²) components along each basis row, the
    within-class spread that pooling collects (`shared_spread` maps a row to another whose
    components it copies, so two concepts can have the same geometry; `dtype` casts the copy
    before it is edited). Sequences that differ
    only in the marker then differ by exactly 2a·basis[i] at its position, at every layer, and
    nowhere else.

    Raises:
        DataError: the basis is not orthonormal rows of the model's width, or the model is not
            Llama-style.
    """
    _llama_blocks(model)
    q = torch.as_tensor(np.asarray(basis, dtype=np.float64))
    if q.ndim != 2 or q.shape[1] != model.config.hidden_size:
        raise DataError(
            f"the planted basis has shape {tuple(q.shape)}; pass [n, hidden_size="
            f"{model.config.hidden_size}] rows."
        )
    if not torch.allclose(q @ q.T, torch.eye(q.shape[0], dtype=torch.float64), atol=1e-8):
        raise DataError("the planted basis rows must be orthonormal (e.g. from a QR).")
    proj = _complement(q)
    planted = copy.deepcopy(model)
    if dtype is not None:  # cast before editing, so the projections are not rounded twice
        planted = planted.to(dtype)
    for block in decoder_layers(planted):
        _blind_reads(block, proj)
        _project_writes(block, proj)
    embedding = planted.get_input_embeddings().weight
    rows = embedding.detach().cpu().double()
    a = strength * float(rows.norm(dim=1).median())
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(rows.shape[0], q.shape[0], generator=gen, dtype=torch.float64)
    for copy_to, copy_from in (shared_spread or {}).items():
        noise[:, copy_to] = noise[:, copy_from]
    rows = rows @ proj + spread * a * noise @ q
    # One centre for every marker: examples of different concepts then differ only inside S.
    centre = proj @ rows[[m for pair in markers.values() for m in pair]].mean(0)
    for i, (m0, m1) in markers.items():
        rows[m0] = centre - a * q[i]
        rows[m1] = centre + a * q[i]
    _set(embedding, rows)
    return planted


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
    blocks = _llama_blocks(model)
    for k in from_layers:
        _check_from_layer(k, len(blocks))
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
