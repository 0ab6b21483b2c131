"""Where valuetrace reads and edits a Hugging Face decoder: its blocks, its residual stream and
the logits its LM head makes.

One definition of the residual stream serves every reader and editor (extraction's pooling,
steering and ablation, the planted self-test, the transformer-lens cross-check): layer 0 is the
input of the first decoder block, layer l (1..L) the output of block l-1. The input of block 0
is not always the embedding module's output: GPT-2 adds learned position embeddings, Granite
and Falcon-H1 multiply by an `embedding_multiplier`, between the two. It is the convention of
transformers' `output_hidden_states` (whose `hidden_states[0]` is block 0's first argument,
`transformers.utils.output_capturing`) except at the end: HF's last hidden state is after the
final norm, valuetrace's layer L is before it (the residual stream itself).

Scoring applies the LM head itself (only where a token is scored), so it must also apply what a
model's forward does to the head's output: a scale (Cohere's `logit_scale`, Granite's
`logits_scaling` divisor, Falcon-H1's `lm_head_multiplier`) and a final tanh soft-cap (Gemma 2
and 3). `logit_transform` derives it from the config, and `check_logits` compares the result
with a full forward's logits, so an architecture that transforms its logits in some other way is
refused instead of scored wrongly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from transformers import PreTrainedModel

from valuetrace.errors import ConfigError

ResidualFn = Callable[[torch.Tensor], torch.Tensor | None]
HookFn = Callable[..., object]

# Post-head scales, read off each family's *ForCausalLM.forward in transformers 5.24:
# (model types, config field, whether the logits are multiplied (True) or divided by it).
_LOGIT_SCALES: tuple[tuple[frozenset[str], str, bool], ...] = (
    (frozenset({"cohere", "cohere2", "cohere2_moe", "cohere_compass"}), "logit_scale", True),
    (
        frozenset(
            {
                "granite",
                "granite_swa",
                "granitemoe",
                "granitemoe_swa",
                "granitemoehybrid",
                "granitemoeshared",
                "minicpm3",  # divides the hidden state before the (bias-free) head: the same
            }
        ),
        "logits_scaling",
        False,
    ),
    (frozenset({"hyperclovax"}), "logits_scaling", True),  # MuP: multiplies, unlike Granite
    (frozenset({"falcon_h1"}), "lm_head_multiplier", True),
)
_SOFTCAP_FIELDS = ("final_logit_softcapping", "logits_soft_cap")  # Gemma 2/3 …, RecurrentGemma
_CHECK_TOKENS = 16


def _describe(model: PreTrainedModel) -> str:
    """The model's class and model type, as error messages name it."""
    return f"{type(model).__name__} (model_type {model.config.model_type!r})"


def decoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The decoder blocks a decoder-only HF model runs, in order (Llama, Gemma, GPT-2 …).

    Found as a `ModuleList` at `model.base_model.layers` (Llama-style), `.h` (GPT-2 style) or
    `.blocks`, cut to the config's `num_hidden_layers` as transformers' own loops do.

    Raises:
        ConfigError: no block list is found; valuetrace cannot tell where the residual stream
            is, so it refuses the architecture, naming it.
    """
    body = model.base_model
    for attr in ("layers", "h", "blocks"):
        layers = getattr(body, attr, None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) > 0:
            count = getattr(model.config.get_text_config(), "num_hidden_layers", None)
            return layers[:count] if count else layers
    raise ConfigError(
        f"valuetrace cannot map {_describe(model)}: it finds no list of decoder blocks at "
        "model.base_model.layers, .h or .blocks, so it cannot tell where the residual stream "
        "is. Use a decoder-only architecture with one (Llama, Mistral, Qwen, Gemma, Phi, OLMo, "
        "GPT-2 …)."
    )


def residual_site(layer: int) -> tuple[int, bool]:
    """(block index, whether it is that block's input) where residual layer `layer` lives.

    Layer 0 is the input of block 0, layer l >= 1 the output of block l - 1.
    """
    return (0, True) if layer == 0 else (layer - 1, False)


def _input_hook(fn: ResidualFn) -> HookFn:
    """A forward pre-hook (with kwargs) that passes a block's hidden-state input through `fn`."""

    def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if args:
            new = fn(args[0])
            return None if new is None else ((new, *args[1:]), kwargs)
        if "hidden_states" in kwargs:
            new = fn(kwargs["hidden_states"])
            return None if new is None else (args, {**kwargs, "hidden_states": new})
        raise ConfigError(
            f"{type(module).__name__} was called with its hidden states neither first nor as "
            "`hidden_states=`, so valuetrace cannot find layer 0 (the input of the first "
            "block) of this architecture; use one whose blocks take them so (Llama, GPT-2 …)."
        )

    return hook


def _output_hook(fn: ResidualFn) -> HookFn:
    """A forward hook that passes a block's hidden-state output (first of a tuple) through `fn`."""

    def hook(_module: torch.nn.Module, _args: object, output: object) -> object:
        hidden = output[0] if isinstance(output, tuple) else output
        new = fn(hidden)
        if new is None:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new

    return hook


@contextlib.contextmanager
def residual_hooks(
    model: PreTrainedModel, fns: Mapping[int, ResidualFn], *, first: bool = False
) -> Iterator[None]:
    """Call `fns[l](hidden)` on residual layer l at every forward while inside the block.

    `hidden` is the residual stream `[batch, tokens, d_model]` at layer l (`residual_site`); a
    tensor returned replaces it (steering, ablation), `None` leaves it (reading). `first` puts
    the hooks before any other hook on the same block, so an edit is what readers see. The
    hooks are removed on exit, also on exceptions. Layers must lie in 0..len(blocks) (callers
    check them, e.g. `activations.extract.check_layers`).

    Raises:
        ConfigError: the model has no decoder blocks valuetrace can map (`decoder_layers`).
    """
    blocks = decoder_layers(model)
    handles = []
    try:
        for layer, fn in fns.items():
            block, is_input = residual_site(layer)
            if is_input:
                handle = blocks[block].register_forward_pre_hook(
                    _input_hook(fn), prepend=first, with_kwargs=True
                )
            else:
                handle = blocks[block].register_forward_hook(_output_hook(fn), prepend=first)
            handles.append(handle)
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True)
class LogitTransform:
    """What a causal LM's forward does to its LM head's output: `logits * scale`, then
    `softcap * tanh(logits / softcap)` when `softcap` is set (Gemma 2, Team 2024)."""

    scale: float = 1.0
    softcap: float | None = None

    def __call__(self, logits: Float[torch.Tensor, "... vocab"]) -> Float[torch.Tensor, "... v"]:
        """The model's logits from the head's output (same shape and dtype)."""
        if self.scale != 1.0:
            logits = logits * self.scale
        if self.softcap is not None:
            logits = self.softcap * torch.tanh(logits / self.softcap)
        return logits


def logit_transform(model: PreTrainedModel) -> LogitTransform:
    """The post-head transform of `model`'s forward, derived from its (text) config.

    Covers the scales of Cohere, Granite, MiniCPM3, HyperCLOVA X and Falcon-H1 and the final
    soft-cap of Gemma 2/3 (and every family with `final_logit_softcapping`); any other family is
    taken to use the head's output as it is, which `check_logits` verifies.
    """
    config = model.config.get_text_config()
    scale = 1.0
    for model_types, field, multiplies in _LOGIT_SCALES:
        value = getattr(config, field, None)
        if config.model_type in model_types and value is not None:
            scale = scale * float(value) if multiplies else scale / float(value)
    caps = [getattr(config, field, None) for field in _SOFTCAP_FIELDS]
    softcap = next((float(cap) for cap in caps if cap), None)
    return LogitTransform(scale, softcap)


def lm_logits(
    model: PreTrainedModel, hidden: Float[torch.Tensor, "... d"]
) -> Float[torch.Tensor, "... vocab"]:
    """The model's logits (float32) from final hidden states (`base_model`'s last, after the
    final norm): the output embedding, then the model's `logit_transform`."""
    logits = model.get_output_embeddings()(hidden).float()
    return logit_transform(model)(logits)


@torch.inference_mode()
def check_logits(model: PreTrainedModel, ids: Int[torch.Tensor, " t"]) -> None:
    """Refuse a model whose logits `lm_logits` does not reproduce, tried on one row.

    Runs `model(ids)` once (the first 16 tokens), catches the decoder body's last hidden state
    on the way, and compares `lm_logits` of it with the forward's own logits: they must agree
    to 4 float epsilons of the logits' dtype, relative to the row's largest logit (float
    rounding of the same operations), so a missed scale of a few percent (bf16) or less
    (float32) is caught.

    Raises:
        ConfigError: the logits differ (an architecture whose forward transforms its logits
            in a way `logit_transform` does not know), naming it.
    """
    captured: dict[str, torch.Tensor] = {}

    def grab(_module: torch.nn.Module, _args: object, output: object) -> None:
        captured["hidden"] = output.last_hidden_state  # type: ignore[attr-defined]

    device = next(model.parameters()).device
    row = ids[:_CHECK_TOKENS].to(device)[None]
    handle = model.base_model.register_forward_hook(grab)
    try:
        want = model(input_ids=row, use_cache=False).logits[0]
    finally:
        handle.remove()
    got = lm_logits(model, captured["hidden"][0])
    tol = 4 * torch.finfo(want.dtype).eps * max(1.0, want.abs().max().item())
    diff = (got - want.float()).abs().max().item() if got.shape == want.shape else float("inf")
    if not diff <= tol:
        raise ConfigError(
            f"valuetrace cannot reproduce the logits of {_describe(model)}: its LM head with "
            f"the post-head transform derived from the config ({logit_transform(model)}) "
            f"differs from a full forward's logits by {diff:.3g} (tolerance {tol:.3g}), so its "
            "log-probabilities would not be the model's. Its forward transforms the logits in "
            "a way valuetrace does not know: add it to valuetrace.architecture.logit_transform, "
            "or score an architecture valuetrace supports."
        )
