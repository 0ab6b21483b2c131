"""valuetrace's Python face: load, extract, probe, compare and plot from a notebook.

Five verbs over the same functions the CLI steps call, with no YAML file or run folder:
`load_model` → `extract_activations` → `fit_probes` → `compare_checkpoints` →
`plot_degradation`. Arrays are layer-major (`[n_layers, n_examples, d_model]`, float32), labels
are 0/1 with 1 = the concept present (compassionate), and `groups` (pair ids) keep a
contrastive pair together in every fold and bootstrap resample.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from valuetrace.activations.examples import LabelledExamples, load_examples
from valuetrace.activations.extract import cache_provenance, extract_to_cache
from valuetrace.activations.store import Activations, read_activations
from valuetrace.analysis.localize import compare_stages
from valuetrace.analysis.plots import LayerCurve, plot_layer_curves
from valuetrace.analysis.stage_comparison import StageComparison
from valuetrace.analysis.verdict import held_out_auroc
from valuetrace.config import DEFAULT_CHAT_DATE, Pooling, ProbingConfig
from valuetrace.errors import DataError
from valuetrace.model_sources import resolve_model
from valuetrace.models import load_model as _load_model
from valuetrace.models import load_tokenizer
from valuetrace.probing import ProbeResults, probe_layers
from valuetrace.probing.folds import grouped_folds


def load_model(
    name_or_path: str,
    *,
    dtype: str = "float32",
    device: str | None = None,
    adapter: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM in eval mode and its tokenizer, from a built-in name, hub id, folder or GGUF.

    A GGUF file (or the built-in `smollm2-135m-instruct` offline) is converted once into a
    plain checkpoint in the user cache (`valuetrace.model_sources`); a PEFT adapter is merged in
    float32. `device` defaults to CUDA when present.

    Raises:
        CheckpointError: the model, tokenizer or adapter cannot be found, converted or fitted.
    """
    path = resolve_model(name_or_path).path
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = _load_model(path, adapter=adapter, dtype=dtype, device=device)
    return model, load_tokenizer(path)


def extract_activations(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: LabelledExamples | str | Path,
    *,
    pooling: Pooling = "response",
    layers: Sequence[int] | None = None,
    chat: bool = False,
    chat_date: str = DEFAULT_CHAT_DATE,
    batch_size: int = 16,
    max_length: int = 256,
    path: str | Path | None = None,
) -> Activations:
    """Pooled hidden states of every example at every layer (or `layers`), read into memory.

    The residual stream is read with hooks on the decoder blocks (layer 0 = the first block's
    input, l = output of block l-1, before the final norm) and pooled per example: `last`
    token, `mean` of the tokens, or `response` tokens only; fp32 pooling whatever the model's
    dtype. With `path` the HDF5 cache is kept there (resumable, with provenance); without it a
    temporary file is used and removed. `examples` is a `LabelledExamples` or a JSONL/CSV file
    (`id`, `prompt`, `response`, optional `label`, `pair_id`, `score`). `chat` formats them
    with the tokenizer's chat template, rendered on `chat_date` (`valuetrace.prompts`).

    Returns `Activations` with `.acts` float32 `[n_layers, n_examples, d_model]` (residual-stream
    units), `.layers`, `.ids`, `.labels`, `.groups`.

    Raises:
        DataError: unusable examples (empty text, bad labels) or a layer the model lacks.
        CacheError: `path` holds a cache made for another model, dataset or setting.
    """
    if not isinstance(examples, LabelledExamples):
        examples = load_examples(examples)
    provenance = {
        "stage": "",
        **cache_provenance(
            model=str(model.config.name_or_path),
            model_hash=str(model.config.name_or_path),
            tokenizer=tokenizer,
            examples=examples,
            dataset="examples",
            pooling=pooling,
            dtype="float32",
            max_length=max_length,
            chat=chat,
            chat_date=chat_date,
        ),
    }
    settings = {
        "chat": chat,
        "chat_date": chat_date,
        "provenance": provenance,
        "pooling": pooling,
        "batch_size": batch_size,
        "max_length": max_length,
        "layers": layers,
        "progress": False,
    }
    if path is not None:
        return read_activations(
            extract_to_cache(model, tokenizer, examples, Path(path), **settings)
        )
    with tempfile.TemporaryDirectory(prefix="valuetrace-") as tmp:
        out = Path(tmp) / "activations.h5"
        return read_activations(extract_to_cache(model, tokenizer, examples, out, **settings))


def fit_probes(
    activations: Activations, config: ProbingConfig | None = None, *, seed: int = 0
) -> ProbeResults:
    """Per-layer L2 logistic-regression probes with grouped CV, a control task and CIs.

    Every layer and fold is fitted at once (batched L-BFGS, the objective of scikit-learn's
    `LogisticRegression(C)`); out-of-fold accuracy and AUROC with group-bootstrap intervals,
    Hewitt & Liang (2019) control-task selectivity, and difference-of-means and probe
    directions per layer. A constant layer is reported as undefined (NaN, reason kept).

    Raises:
        DataError: the set has no 0/1 labels, one class only, or too few pairs for the folds.
        ConfigError: a `config` value is out of range (the field is named).
    """
    return probe_layers(
        activations.acts,
        activations.labels,
        np.asarray(activations.groups),
        config,
        seed=seed,
        layers=activations.layers,
    )


def compare_checkpoints(
    before: Activations,
    after: Activations,
    *,
    names: tuple[str, str] = ("before", "after"),
    n_folds: int = 5,
    n_boot: int = 1000,
    ci: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
    before_probes: ProbeResults | None = None,
) -> StageComparison:
    """How the concept changed from one checkpoint to the next, per layer, with a verdict.

    Same examples under both checkpoints. Per layer: (a) *still encoded*, Cohen's d along each
    checkpoint's own cross-fitted difference-of-means direction, whose significant drop is
    weakening; (b) *same direction*, the cosine of the two directions against random and
    shuffled-label nulls; (c) B's separation along A's direction, whose gap from (a) is
    rotation. Paired group-bootstrap CIs, Holm over layers, the first significant layer with a
    bootstrap interval (`valuetrace.analysis.localize.compare_stages`). Without seed replicates
    there is no noise floor: the CLI's `replicates:` adds one. Pass `before_probes`
    (`fit_probes(before)`) to judge a change only at layers where `before` encodes the concept
    (its probe's held-out AUROC interval above 0.5; elsewhere "not encoded in the parent"), as
    the CLI does; without it every layer is judged.

    Raises:
        DataError: the two caches hold other examples, layers or labels, or too few pairs.
    """
    if before.ids != after.ids or before.layers != after.layers:
        raise DataError(
            "the two activation sets hold different examples or layers; extract the same "
            "examples at the same layers from both checkpoints."
        )
    groups = np.asarray(before.groups)
    folds = grouped_folds(groups, n_folds, seed, before.labels)
    comparison, _ = compare_stages(
        before.acts,
        after.acts,
        before.labels,
        groups,
        folds,
        stage_a=names[0],
        stage_b=names[1],
        layers=before.layers,
        n_boot=n_boot,
        alpha=alpha,
        ci=ci,
        seed=seed,
        parent_auroc=None if before_probes is None else held_out_auroc(before_probes),
    )
    return comparison


def plot_degradation(comparison: StageComparison, path: str | Path) -> Path:
    """Plot the layer-wise drop in class separation (Cohen's d along each checkpoint's own
    direction) from A to B with its CI band; above 0 = weakening. Returns the PNG's path.

    Raises:
        DataError: the comparison holds no layers.
    """
    drop = comparison.encoded
    curve = LayerCurve(np.asarray(drop.drop), np.asarray(drop.lo), np.asarray(drop.hi))
    return plot_layer_curves(
        {f"{comparison.stage_a} → {comparison.stage_b}": curve},
        "drop in Cohen's d (own cross-fitted direction)",
        f"layer-wise weakening ({round(100 * comparison.ci)}% CI)",
        path,
        chance=0.0,
        layers=comparison.layers,
        chance_label="no change",
    )
