"""The transformer-lens backend: the same pooled hidden states, read from `run_with_cache`.

Layer 0 is `blocks.0.hook_resid_pre` (the first block's input) and layer l is
`blocks.{l-1}.hook_resid_post`, the residual-stream sites of `valuetrace.architecture` that the
hook backend (`activations.extract`) pools, so the two agree to float rounding. It exists to
cross-check the hook backend and for users who already work in transformer-lens; the hook
backend is faster (no LM head, no full-sequence cache).

The bridge is built with `build_bridge_from_module`, the builder `boot_transformers` uses for a
pre-loaded `hf_model=`: `boot_transformers` also insists on a tokenizer that it reloads from
disk by `name_or_path` (an in-memory tokenizer raises KeyError), while batches here are already
token ids. Like `boot_transformers`, it switches the model to eager attention, and the bridge
replaces the model's submodules in place, so it wraps a deep copy and the caller's model is left
as it was (at the cost of a second copy in memory). Importing transformer-lens sets the
`transformers` logger to ERROR for the whole process; `boot_bridge` restores the level.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from transformers import PreTrainedModel

from valuetrace.activations.pooling import Batch, pool
from valuetrace.architecture import residual_site

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


def boot_bridge(model: PreTrainedModel) -> TransformerBridge:
    """A transformer-lens bridge over a deep copy of `model` (eager attention, same device)."""
    transformers_logger = logging.getLogger("transformers")
    level = transformers_logger.level
    try:
        from transformer_lens.model_bridge.sources import build_bridge_from_module
        from transformer_lens.utilities.attn_implementation import force_eager_attention
    finally:
        transformers_logger.setLevel(level)
    twin = copy.deepcopy(model).eval()
    force_eager_attention(twin)
    return build_bridge_from_module(twin, type(twin).__name__, hf_config=twin.config)


def hook_name(layer: int) -> str:
    """The transformer-lens hook holding hidden-state layer `layer` (`residual_site`)."""
    block, is_input = residual_site(layer)
    return f"blocks.{block}.hook_resid_pre" if is_input else f"blocks.{block}.hook_resid_post"


@torch.inference_mode()
def pooled_hidden_states_tl(
    bridge: TransformerBridge, batch: Batch, layers: list[int]
) -> Float[torch.Tensor, "l b d"]:
    """Pooled hidden states of `layers` (sorted) for one batch, via `run_with_cache` (fp32)."""
    device = torch.device(bridge.cfg.device)
    names = [hook_name(layer) for layer in layers]
    # Stop before the block after the last requested site; the last layer needs the full run.
    stop = residual_site(layers[-1])[0] + 1
    stop = stop if stop < bridge.cfg.n_layers else None
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        _, cache = bridge.run_with_cache(
            batch.input_ids.to(device),
            attention_mask=batch.attention_mask.to(device),
            position_ids=batch.position_ids.to(device),
            names_filter=names,
            return_type=None,
            return_cache_object=False,
            stop_at_layer=stop,
        )
    weights = batch.weights.to(device)
    return torch.stack([pool(cache[n], weights) for n in names])
