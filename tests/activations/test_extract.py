"""Extraction: hooks match HF hidden states; layer checks; the cache it writes."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tests.valuetrace.test_prompts import DATED_TEMPLATE, set_today
from valuetrace.activations.examples import LabelledExamples
from valuetrace.activations.extract import (
    MIN_SHARED_TOKENS,
    cache_provenance,
    check_layers,
    extract_to_cache,
    length_batches,
    pooled_hidden_states,
    shared_length,
)
from valuetrace.activations.pooling import collate, encode
from valuetrace.activations.prefix import reuses_prefixes
from valuetrace.activations.store import read_activations
from valuetrace.architecture import decoder_layers
from valuetrace.config import DEFAULT_CHAT_DATE
from valuetrace.errors import CacheError, ConfigError, ValuetraceError
from valuetrace.prompts import chat_render_hash


def _examples(n: int) -> LabelledExamples:
    animals = ["cat", "dog", "pig", "cow", "hen", "fox", "crow", "goat"]
    return LabelledExamples(
        ids=[f"e{i}" for i in range(n)],
        prompts=[f"Q: the {animals[i % 8]} limped near the barn? A:" for i in range(n)],
        responses=[
            (" the vet listened." if i % 2 else " the farmer watched.") * (1 + i % 3)
            for i in range(n)
        ],
        labels=np.arange(n) % 2,
        groups=[f"p{i // 2}" for i in range(n)],
    )


PROVENANCE = {
    "model_hash": "m",
    "tokenizer_hash": "t",
    "dataset_hash": "d",
    "pooling": "mean",
    "dtype": "float32",
    "max_length": 64,
    "prompt_format": "plain",
}


def test_last_layer_is_the_residual_before_the_final_norm(tiny_model, tiny_tokenizer):
    encoded = encode(tiny_tokenizer, ["Q: a cat? A:"], [" the vet listened."], 64)
    batch = collate(encoded, tiny_tokenizer.pad_token_id, tiny_tokenizer.bos_token_id, "last")
    captured = {}

    def grab(_module, args) -> None:
        captured["pre"] = args[0][0, -1]

    handle = tiny_model.model.norm.register_forward_pre_hook(grab)
    try:
        tiny_model(batch.input_ids)
    finally:
        handle.remove()
    last = pooled_hidden_states(tiny_model, batch, [2])[0, 0]
    assert torch.allclose(last, captured["pre"], atol=1e-5)


def test_llama_layer_0_is_the_embedding_output_exactly(tiny_model, tiny_tokenizer):
    encoded = encode(tiny_tokenizer, ["Q: a cat? A:", "Q:"], [" the vet listened.", " a dog."], 64)
    embed = tiny_model.get_input_embeddings()
    for row in encoded:  # a batch of one row runs whole (no shared prefix)
        batch = collate([row], tiny_tokenizer.pad_token_id, tiny_tokenizer.bos_token_id, "mean")
        assert shared_length(batch) == 0
        captured = {}
        handle = embed.register_forward_hook(lambda _m, _i, out, c=captured: c.update(embed=out))
        try:
            layer_0 = pooled_hidden_states(tiny_model, batch, [0])[0]
        finally:
            handle.remove()
        # Llama feeds the embeddings to its first block untouched: the same numbers as before
        # the residual stream was read at block boundaries (other families add positions or
        # scales).
        want = torch.einsum("bt,btd->bd", batch.weights, captured["embed"])
        torch.testing.assert_close(layer_0, want, rtol=0, atol=0)


def test_check_layers_names_the_valid_range(tiny_model):
    assert check_layers(tiny_model, None) == [0, 1, 2]
    with pytest.raises(ConfigError, match=r"\[5\] do not exist \(`extract.layers`.*0 \(embed"):
        check_layers(tiny_model, [0, 5])
    with pytest.raises(ConfigError, match="no layers requested"):
        check_layers(tiny_model, [])


def test_extract_writes_every_row_in_order(tmp_path, tiny_model, tiny_tokenizer):
    data = _examples(300)  # > one 256-row block, so blocks and sorting are exercised
    path = extract_to_cache(
        tiny_model,
        tiny_tokenizer,
        data,
        tmp_path / "a.h5",
        provenance=PROVENANCE,
        pooling="mean",
        batch_size=16,
        max_length=64,
        progress=False,
    )
    cache = read_activations(path)
    assert cache.acts.shape == (3, 300, 32)
    assert cache.ids == data.ids and cache.groups == data.groups
    one = encode(tiny_tokenizer, data.prompts[257:258], data.responses[257:258], 64)
    batch = collate(one, tiny_tokenizer.pad_token_id, tiny_tokenizer.bos_token_id, "mean")
    direct = pooled_hidden_states(tiny_model, batch, [0, 1, 2])[:, 0].numpy()
    np.testing.assert_allclose(cache.acts[:, 257], direct, atol=1e-5)


def test_extract_warns_of_cut_texts_at_once_and_totals_them_at_the_end(
    tmp_path, tiny_model, tiny_tokenizer, caplog
):
    data = _examples(300)  # tokenised a 256-row block at a time
    lengths = [len(e.ids) for e in encode(tiny_tokenizer, data.prompts, data.responses, 512)]
    limit = max(lengths) - 1
    long_rows = np.array(lengths) > limit
    with caplog.at_level(logging.WARNING):
        extract_to_cache(
            tiny_model,
            tiny_tokenizer,
            data,
            tmp_path / "cut.h5",
            provenance=PROVENANCE,
            pooling="mean",
            batch_size=16,
            max_length=limit,
            progress=False,
        )
    warnings = [r.getMessage() for r in caplog.records if "lost the end" in r.getMessage()]
    first, total = long_rows[:256].sum(), long_rows.sum()
    assert warnings[0].startswith(f"{first} of 256 examples are longer than {limit}")
    assert warnings[1].startswith(f"{total} of 300 examples are longer than {limit}")
    assert len(warnings) == 2


def test_extract_without_pad_token_is_refused(tmp_path, tiny_model, tiny_tokenizer):
    tok = tiny_tokenizer.__class__(tokenizer_object=tiny_tokenizer.backend_tokenizer)
    data = _examples(4)
    with pytest.raises(ValuetraceError, match="no pad token"):
        extract_to_cache(
            tiny_model,
            tok,
            data,
            tmp_path / "x.h5",
            provenance=PROVENANCE,
            pooling="mean",
            batch_size=4,
            max_length=64,
        )


def test_length_batches_respect_the_row_and_token_budgets():
    lengths = [5, 40, 7, 12, 33, 3, 64, 20, 9, 11, 100]
    batches = length_batches(lengths, batch_size=4, max_batch_tokens=64)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)  # shortest first
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert len(batch) <= 4 and (padded <= 64 or len(batch) == 1)
    assert batches[-1] == [10]  # longer than the budget: a batch of its own
    assert length_batches(lengths, batch_size=4) == [flat[0:4], flat[4:8], flat[8:11]]


def test_a_token_budget_gives_the_same_cache_as_a_fixed_batch_size(
    tmp_path, tiny_model, tiny_tokenizer
):
    data = _examples(60)
    encoded = encode(tiny_tokenizer, data.prompts, data.responses, 64)
    lengths = [len(e.ids) for e in encoded]
    assert len(length_batches(lengths, 16, 120)) > len(length_batches(lengths, 16))
    acts = []
    for name, budget in (("fixed", None), ("budget", 120)):
        path = extract_to_cache(
            tiny_model,
            tiny_tokenizer,
            data,
            tmp_path / f"{name}.h5",
            provenance=PROVENANCE,
            pooling="mean",
            batch_size=16,
            max_length=64,
            progress=False,
            max_batch_tokens=budget,
        )
        acts.append(read_activations(path).acts)
    np.testing.assert_allclose(acts[1], acts[0], atol=1e-6, rtol=0)


def test_batch_size_1_and_16_agree_and_a_resume_never_mixes_them(
    tmp_path, tiny_model, tiny_tokenizer
):
    data = _examples(48)
    acts = {}
    for batch_size in (1, 16):
        path = extract_to_cache(
            tiny_model,
            tiny_tokenizer,
            data,
            tmp_path / f"b{batch_size}.h5",
            provenance=PROVENANCE,
            pooling="mean",
            batch_size=batch_size,
            max_length=64,
            progress=False,
        )
        cache = read_activations(path)
        assert cache.attrs["batch_size"] == batch_size
        assert cache.attrs["max_batch_tokens"] == "none"
        acts[batch_size] = cache.acts
    np.testing.assert_allclose(acts[1], acts[16], atol=1e-5, rtol=0)

    def stop_after_first_block(rows_done: int) -> None:
        raise KeyboardInterrupt  # the run is killed once the first block is on disk

    data = _examples(300)  # two blocks of rows: 256, then 44
    half = tmp_path / "half.h5"
    settings = {"provenance": PROVENANCE, "pooling": "mean", "max_length": 64, "progress": False}
    with pytest.raises(KeyboardInterrupt):
        extract_to_cache(
            tiny_model,
            tiny_tokenizer,
            data,
            half,
            batch_size=16,
            progress_callback=stop_after_first_block,
            **settings,
        )
    for other in ({"batch_size": 1}, {"batch_size": 16, "max_batch_tokens": 200}):
        field = "max_batch_tokens" if "max_batch_tokens" in other else "batch_size"
        with pytest.raises(CacheError, match=rf"{field}: cache has .*, request has"):
            extract_to_cache(tiny_model, tiny_tokenizer, data, half, **other, **settings)
    extract_to_cache(tiny_model, tiny_tokenizer, data, half, batch_size=16, **settings)
    assert read_activations(half).attrs["batch_size"] == 16  # the same settings resume


def test_a_chat_cache_records_its_date_and_is_resumed_on_any_day_but_not_another_date(
    tmp_path, monkeypatch, tiny_model, tiny_tokenizer
):
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = DATED_TEMPLATE
    data = _examples(300)  # two blocks: the first is on disk when the run is killed

    def provenance(chat_date: str) -> dict[str, str | int]:
        return cache_provenance(
            model="m",
            model_hash="m",
            tokenizer=tokenizer,
            examples=data,
            dataset="d",
            pooling="mean",
            dtype="float32",
            max_length=96,
            chat=True,
            chat_date=chat_date,
        )

    def run(chat_date: str, **kwargs: object) -> Path:
        return extract_to_cache(
            tiny_model,
            tokenizer,
            data,
            tmp_path / "chat.h5",
            chat=True,
            chat_date=chat_date,
            provenance=provenance(chat_date),
            pooling="mean",
            batch_size=16,
            max_length=96,
            progress=False,
            **kwargs,
        )

    def stop_after_first_block(rows_done: int) -> None:
        raise KeyboardInterrupt

    set_today(monkeypatch, 2026, 12, 1)
    with pytest.raises(KeyboardInterrupt):
        run(DEFAULT_CHAT_DATE, progress_callback=stop_after_first_block)
    set_today(monkeypatch, 2026, 12, 2)  # resumed the next day: same pinned date, same prompts
    with pytest.raises(CacheError, match=r"chat_date: cache has '26 Jul 2024', request has '01"):
        run("01 Dec 2026")
    cache = read_activations(run(DEFAULT_CHAT_DATE))
    assert cache.attrs["chat_date"] == DEFAULT_CHAT_DATE
    assert cache.attrs["chat_render"] == chat_render_hash(tokenizer, DEFAULT_CHAT_DATE)
    assert provenance("01 Dec 2026")["chat_render"] != cache.attrs["chat_render"]


# like SmolLM2's: a conversation without a system turn gets a default one
SYSTEM_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|system|>\nThe vet helped the cat."
    "{{ eos_token }}\n{% endif %}"
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _chat_extract(model, chat, data, path: Path, pooling: str, **kwargs) -> tuple[Path, int]:
    """Extract `data` under the chat template at batch 8; the cache and the number of token
    positions the first decoder layer was fed."""
    fed = []
    handle = decoder_layers(model)[0].register_forward_pre_hook(
        lambda _module, args: fed.append(args[0].shape[0] * args[0].shape[1])
    )
    try:
        out = extract_to_cache(
            model,
            chat,
            data,
            path,
            chat=True,
            provenance={**PROVENANCE, "pooling": pooling},
            pooling=pooling,
            batch_size=8,
            max_length=128,
            progress=False,
            **kwargs,
        )
    finally:
        handle.remove()
    return out, sum(fed)


@pytest.mark.parametrize(
    ("pooling", "layers"), [("last", None), ("mean", None), ("mean", [0, 1]), ("response", None)]
)
def test_a_shared_chat_prefix_runs_once_and_pools_as_each_row_alone(
    tmp_path, tiny_model, tiny_tokenizer, pooling, layers
):
    chat = copy.deepcopy(tiny_tokenizer)
    chat.chat_template = SYSTEM_TEMPLATE
    data = _examples(24)
    prompts = [p if i % 3 else "" for i, p in enumerate(data.prompts)]  # some without a prompt
    data = LabelledExamples(data.ids, prompts, data.responses, data.labels, data.groups)
    encoded = encode(chat, data.prompts, data.responses, 128, chat=True)
    batch = collate(encoded[:8], chat.pad_token_id, chat.bos_token_id, pooling)
    assert shared_length(batch) >= MIN_SHARED_TOKENS  # the system turn is shared
    left = collate(encoded[:8], chat.pad_token_id, chat.bos_token_id, pooling, "left")
    assert shared_length(left) == 0  # unequal rows, left-padded: no column is real in all
    path, fed = _chat_extract(tiny_model, chat, data, tmp_path / "chat.h5", pooling, layers=layers)
    assert fed < sum(len(e.ids) for e in encoded)  # fewer than the rows' own tokens
    chosen = [0, 1, 2] if layers is None else layers
    alone = torch.cat(  # a batch of one row never shares: the full forward of each row
        [
            pooled_hidden_states(
                tiny_model, collate([e], chat.pad_token_id, chat.bos_token_id, pooling), chosen
            )
            for e in encoded
        ],
        dim=1,
    )
    np.testing.assert_allclose(read_activations(path).acts, alone.numpy(), atol=1e-5, rtol=0)


def test_extraction_without_shared_prefixes_runs_every_row_whole_and_records_it(
    tmp_path, tiny_model, tiny_tokenizer
):
    """`share_prefixes=False` (the config's `extract.share_prefixes`) feeds the decoder every
    row's own tokens, gives the shared path's vectors to 1e-5, and is recorded, so a cache is
    never resumed with the other setting."""
    chat = copy.deepcopy(tiny_tokenizer)
    chat.chat_template = SYSTEM_TEMPLATE
    data = _examples(16)
    encoded = encode(chat, data.prompts, data.responses, 128, chat=True)

    def run(name: str, **kwargs) -> tuple[Path, int]:
        return _chat_extract(tiny_model, chat, data, tmp_path / name, "mean", **kwargs)

    shared, shared_fed = run("shared.h5")
    whole, whole_fed = run("whole.h5", share_prefixes=False)
    assert shared_fed < sum(len(e.ids) for e in encoded) <= whole_fed
    np.testing.assert_allclose(
        read_activations(whole).acts, read_activations(shared).acts, atol=1e-5, rtol=0
    )
    assert read_activations(whole).attrs["shared_prefixes"] == "off"
    assert read_activations(shared).attrs["shared_prefixes"] == "on"
    with pytest.raises(CacheError, match="shared_prefixes"):
        run("shared.h5", share_prefixes=False)
    with h5py.File(shared, "a") as handle:  # a cache written before the setting was recorded
        del handle.attrs["shared_prefixes"]
    assert run("shared.h5")[1] == 0  # complete and matching: reused, nothing run again


def test_extraction_asks_once_whether_the_model_reuses_prefixes(
    tmp_path, tiny_model, tiny_tokenizer, monkeypatch
):
    """`reuses_prefixes` builds a cache description of the whole model: once per extraction,
    not once per batch (10 batches here)."""
    from valuetrace.activations import extract

    calls = []

    def counted(model):
        calls.append(model)
        return reuses_prefixes(model)

    monkeypatch.setattr(extract, "reuses_prefixes", counted)
    extract_to_cache(
        tiny_model,
        tiny_tokenizer,
        _examples(40),
        tmp_path / "once.h5",
        provenance=PROVENANCE,
        pooling="mean",
        batch_size=4,
        max_length=64,
        progress=False,
    )
    assert len(calls) == 1
