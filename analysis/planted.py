"""Localisation self-test: remove a known direction from a known layer on, and find that layer.

Two models are built from the given one. The *planted* model carries a class signal along a
random unit direction u and nowhere else: every block is made blind to u (RMSNorm weights folded
into the q/k/v and gate/up reads, which are then projected onto u's complement, W <- W diag(g)
(I - uu^T), norm weight <- 1), nothing writes along u (o_proj and down_proj <- (I - uu^T) W), and
two marker tokens get embedding rows e - a·u (class 0) and e + a·u (class 1) with e ⊥ u (other
rows keep their own components along u, which spread the projections within a class). Every
example is a neutral text with one of the markers appended, so the two members of a pair differ
by exactly 2a·u at the marker position at every layer (the stream norms agree, so no block sees
the class through RMSNorm either). The *removed* model is `plant_direction_removal` of it. The
localisation must put the first significant drop at `from_layer`.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_predict
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from valuetrace.activations.extract import n_layers, pooled_hidden_states
from valuetrace.activations.pooling import Encoded, collate, encode
from valuetrace.analysis.causal import DirectionLike, unit_direction
from valuetrace.analysis.localize import Localization, Metric, localize

from valuetrace.errors import DataError
from valuetrace.models import decoder_layers

_BLOCK_PARTS = {"self_attn", "mlp", "input_layernorm", "post_attention_layernorm"}
_READS = {
    "input_layernorm": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "post_attention_layernorm": ("mlp.gate_proj", "mlp.up_proj"),
}
_WRITES = ("self_attn.o_proj", "mlp.down_proj")
_MIN_TEXTS = 10


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


def _complement(u: torch.Tensor) -> torch.Tensor:
    """I - uu^T in float64, the projector onto the complement of unit vector u."""
    u64 = u.double()
    return torch.eye(u64.numel(), dtype=torch.float64) - torch.outer(u64, u64)


@torch.no_grad()
def _set(param: torch.Tensor, value: torch.Tensor) -> None:
    """Overwrite a weight in place (keeping dtype, device and any tying)."""
    param.copy_(value.to(device=param.device, dtype=param.dtype))


def _project_writes(block: torch.nn.Module, proj: torch.Tensor) -> None:
    """Make `block` write nothing along u: its o_proj and down_proj outputs go through proj."""
    for name in _WRITES:
        linear = block.get_submodule(name)
        _set(linear.weight, proj @ linear.weight.detach().cpu().double())
        if linear.bias is not None:
            _set(linear.bias, proj @ linear.bias.detach().cpu().double())


def _blind_reads(block: torch.nn.Module, proj: torch.Tensor) -> None:
    """Make `block` unable to read u: fold each RMSNorm weight into its reads, then project."""
    for norm_name, read_names in _READS.items():
        norm = block.get_submodule(norm_name)
        gain = torch.diag(norm.weight.detach().cpu().double())
        for name in read_names:
            linear = block.get_submodule(name)
            _set(linear.weight, linear.weight.detach().cpu().double() @ gain @ proj)
        _set(norm.weight, torch.ones_like(norm.weight))


class _RemovesDirection:
    """Mixin for a decoder block: its output has the buffer `removed_direction` projected out."""

    removed_direction: torch.Tensor

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The block's own forward, then h <- h - (h·u)u on its hidden-state output."""
        output = super().forward(*args, **kwargs)  # type: ignore[misc]
        hidden = output[0] if isinstance(output, tuple) else output
        u = self.removed_direction.to(hidden.dtype)
        hidden = hidden - (hidden @ u).unsqueeze(-1) * u
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@functools.cache
def _removing_class(block_class: type) -> type:
    """A subclass of `block_class` that projects u out of its output (isinstance still holds)."""
    return type(f"DirectionRemoved{block_class.__name__}", (_RemovesDirection, block_class), {})


def plant_direction_removal(
    model: PreTrainedModel, direction: DirectionLike, from_layer: int
) -> PreTrainedModel:
    """A copy of `model` with no residual-stream component along `direction` from `from_layer` on.

    Guarantee: h·u = 0 (to float rounding) at every position of every layer >= from_layer, for
    any input, and every layer before it is bit-identical to the original. Edits: blocks
    from_layer, from_layer+1, … write nothing along u (o_proj, down_proj <- (I - uu^T) W). What
    the stream already carries at from_layer - 1 cannot be cancelled by any weight of a pre-norm
    block (a block sees only RMSNorm(h), which ignores the scale of h, while h·u grows with it),
    so block from_layer-1 projects its output with the fixed map I - uu^T (u is its non-persistent
    buffer `removed_direction`; `save_pretrained` keeps only the weight edits). For from_layer =
    0 the embedding matrix is projected instead, E <- E (I - uu^T), a pure weight edit, with the
    LM head untied so the logits keep their original read-out.
    """
    blocks = _llama_blocks(model)
    _check_from_layer(from_layer, len(blocks))
    u = unit_direction(direction, model.config.hidden_size, "the planted removal")
    proj = _complement(u)
    edited = copy.deepcopy(model)
    edited_blocks = decoder_layers(edited)
    if from_layer == 0:
        embedding = edited.get_input_embeddings().weight
        head = edited.get_output_embeddings()
        if head is not None and head.weight is embedding:
            head.weight = torch.nn.Parameter(embedding.detach().clone())
            edited.config.tie_word_embeddings = False
        _set(embedding, embedding.detach().cpu().double() @ proj)
    else:
        block = edited_blocks[from_layer - 1]
        block.__class__ = _removing_class(type(block))
        block.register_buffer(
            "removed_direction", u.to(next(block.parameters()).device), persistent=False
        )
    for block in edited_blocks[from_layer:]:
        _project_writes(block, proj)
    return edited


def plant_marker_signal(
    model: PreTrainedModel,
    direction: DirectionLike,
    markers: tuple[int, int],
    strength: float,
) -> PreTrainedModel:
    """A copy of `model` blind to u except for two marker tokens whose rows differ only along u.

    Reads are projected off u (norm weights folded in) and so are writes; the marker rows become
    e - a·u and e + a·u (e ⊥ u, a = strength × median embedding row norm). Sequences that differ
    only in the marker then differ by exactly 2a·u at its position, at every layer, and nowhere
    else; other tokens keep their own, class-independent, components along u.
    """
    _llama_blocks(model)
    u = unit_direction(direction, model.config.hidden_size, "the planted signal")
    proj = _complement(u)
    planted = copy.deepcopy(model)
    for block in decoder_layers(planted):
        _blind_reads(block, proj)
        _project_writes(block, proj)
    embedding = planted.get_input_embeddings().weight
    rows = embedding.detach().cpu().double()
    a = strength * float(rows.norm(dim=1).median())
    centre = proj @ rows[list(markers)].mean(0)
    rows[markers[0]] = centre - a * u.double()
    rows[markers[1]] = centre + a * u.double()
    _set(embedding, rows)
    return planted


@dataclass(frozen=True)
class SelfTestResult:
    """Whether the localisation put the first significant drop at the planted layer."""

    from_layer: int  # where the direction was removed
    found_layer: int | None  # first significant layer of the chosen metric
    passed: bool
    markers: tuple[int, int]  # token ids of the class-0 and class-1 markers
    localization: Localization

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field, the localisation included."""
        return asdict(self)


def _pooled(
    model: PreTrainedModel,
    encoded: list[Encoded],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
) -> Float[np.ndarray, "l n d"]:
    """Mean-pooled activations of every layer for `encoded`, in order."""
    layers = list(range(n_layers(model)))
    pad, bos = tokenizer.pad_token_id, tokenizer.bos_token_id
    parts = []
    for start in range(0, len(encoded), batch_size):
        batch = collate(encoded[start : start + batch_size], pad, bos, "mean")
        parts.append(pooled_hidden_states(model, batch, layers).cpu())
    return torch.cat(parts, dim=1).numpy().astype(np.float64)


def _oof_scores(
    acts: Float[np.ndarray, "l n d"], labels: Int[np.ndarray, " n"], groups: Int[np.ndarray, " n"]
) -> Float[np.ndarray, "l n"]:
    """Out-of-fold logistic-probe decision scores per layer, folds keeping pairs together."""
    probe = LogisticRegression(max_iter=5000)
    cv = GroupKFold(n_splits=5)
    scores = [
        cross_val_predict(probe, x, labels, groups=groups, cv=cv, method="decision_function")
        for x in acts
    ]
    return np.stack(scores)


def _projections(
    acts: Float[np.ndarray, "l n d"],
    reference: Float[np.ndarray, "l n d"],
    labels: Int[np.ndarray, " n"],
) -> Float[np.ndarray, "l n"]:
    """`acts` projected, per layer, on the unit class-mean difference of `reference`."""
    diff = reference[:, labels == 1].mean(1) - reference[:, labels == 0].mean(1)
    unit = diff / np.maximum(np.linalg.norm(diff, axis=1, keepdims=True), 1e-12)
    return np.einsum("lnd,ld->ln", acts, unit)


def planted_selftest(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    from_layer: int,
    *,
    seed: int = 0,
    strength: float = 4.0,
    metric: Metric = "auroc",
    n_boot: int = 2000,
    batch_size: int = 32,
    max_length: int = 128,
) -> SelfTestResult:
    """Plant a class signal along a random u, remove it from `from_layer` on, and localise.

    Each text makes one pair (text + class-0 marker, text + class-1 marker); mean-pooled
    activations of the planted and the removed model go through OOF logistic probes (5-fold
    GroupKFold over pairs) and projections on the planted model's class-mean direction into
    `localize`. Mean pooling keeps a within-class spread along u (last-token pooling would not).
    """
    _check_from_layer(from_layer, len(_llama_blocks(model)))
    if len(set(texts)) < _MIN_TEXTS:
        raise DataError(
            f"the self-test needs at least {_MIN_TEXTS} distinct neutral texts (one pair each, "
            f"5-fold probes over pairs); got {len(set(texts))}."
        )
    encoded = encode(tokenizer, [""] * len(texts), texts, max_length - 1)
    used = {i for e in encoded for i in e.ids} | set(tokenizer.all_special_ids)
    free = sorted(set(range(model.get_input_embeddings().num_embeddings)) - used)
    if len(free) < 2:
        raise DataError(
            "every token id appears in the texts, so none is free to act as a marker; pass "
            "fewer or shorter texts."
        )
    rng = np.random.default_rng(seed)
    m0, m1 = (int(i) for i in rng.choice(free, size=2, replace=False))
    u = rng.normal(size=model.config.hidden_size)
    planted = plant_marker_signal(model, u, (m0, m1), strength).eval()
    removed = plant_direction_removal(planted, u, from_layer).eval()

    examples = [
        Encoded(ids=[*e.ids, marker], response=[*e.response, True])
        for e in encoded
        for marker in (m0, m1)
    ]
    labels = np.tile([0, 1], len(encoded))
    groups = np.repeat(np.arange(len(encoded)), 2)
    acts_a = _pooled(planted, examples, tokenizer, batch_size)
    acts_b = _pooled(removed, examples, tokenizer, batch_size)
    loc = localize(
        _oof_scores(acts_a, labels, groups),
        _oof_scores(acts_b, labels, groups),
        _projections(acts_a, acts_a, labels),
        _projections(acts_b, acts_a, labels),
        labels,
        groups,
        stage_a="planted",
        stage_b=f"removed from layer {from_layer}",
        metric=metric,
        n_boot=n_boot,
        seed=seed,
    )
    found = loc.primary.first_significant.layer
    return SelfTestResult(from_layer, found, found == from_layer, (m0, m1), loc)
