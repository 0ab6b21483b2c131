"""The model edits of the planted self-test (`analysis.planted`), on pre-norm Llama-style blocks.

`plant_markers` makes every block blind to a small subspace S of the residual stream (RMSNorm
weights folded into the q/k/v and gate/up reads, which are then projected off S; o_proj and
down_proj projected off S), so what the embeddings put in S is carried unchanged to every layer,
and gives marker tokens rows in S. `plant_stream_map` applies a map M (identity outside S) to
the residual stream from a chosen layer on.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from transformers import PreTrainedModel

from valuetrace.architecture import decoder_layers
from valuetrace.errors import DataError

_BLOCK_PARTS = {"self_attn", "mlp", "input_layernorm", "post_attention_layernorm"}
_READS = {
    "input_layernorm": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "post_attention_layernorm": ("mlp.gate_proj", "mlp.up_proj"),
}
_WRITES = ("self_attn.o_proj", "mlp.down_proj")


def llama_blocks(model: PreTrainedModel) -> torch.nn.ModuleList:
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


def check_from_layer(from_layer: int, n_blocks: int) -> None:
    """Fail unless `from_layer` is a residual-stream layer of a model with `n_blocks` blocks.

    Raises:
        DataError: `from_layer` lies outside 0..n_blocks.
    """
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
    blocks = llama_blocks(model)
    check_from_layer(from_layer, len(blocks))
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
    llama_blocks(model)
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
