"""Models: the offline tokenizer and Llama, loading by path, adapters and bad paths."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import BertConfig, BertModel

from valuetrace.architecture import decoder_layers
from valuetrace.errors import ValuetraceError
from valuetrace.models import load_model, load_tokenizer


def test_tokenizer_adds_bos_and_round_trips(tiny_tokenizer):
    ids = tiny_tokenizer("The cat rested near the barn.").input_ids
    assert ids[0] == tiny_tokenizer.bos_token_id
    assert tiny_tokenizer.decode(ids, skip_special_tokens=True) == "The cat rested near the barn."
    assert tiny_tokenizer.pad_token_id is not None


def test_scratch_model_is_sized_to_the_tokenizer(tiny_model, tiny_tokenizer):
    assert tiny_model.config.vocab_size == len(tiny_tokenizer)
    assert len(decoder_layers(tiny_model)) == 2


def test_load_model_round_trip(tiny_checkpoint, tiny_model):
    loaded = load_model(str(tiny_checkpoint))
    ids = torch.tensor([[0, 5, 6, 7]])
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, tiny_model(ids).logits, atol=1e-6)
    assert load_tokenizer(str(tiny_checkpoint)).pad_token is not None


def test_missing_path_fails_fast_with_the_fix(tmp_path):
    with pytest.raises(ValuetraceError, match="does not exist"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(ValuetraceError, match=r"holds no config\.json"):
        load_model(str(tmp_path))


def test_non_causal_model_is_refused(tmp_path):
    BertModel(
        BertConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            vocab_size=100,
        )
    ).save_pretrained(tmp_path / "bert")
    with pytest.raises(ValuetraceError, match="not a causal LM"):
        load_model(str(tmp_path / "bert"))


def test_adapter_is_merged_and_a_mismatched_one_is_refused(tmp_path, tiny_checkpoint, tiny_model):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(
        load_model(str(tiny_checkpoint)),
        LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False),
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = load_model(str(tmp_path / "adapter"))  # base found from adapter_config.json
    ids = torch.tensor([[0, 5, 6, 7]])
    with torch.no_grad():
        assert not torch.allclose(merged(ids).logits, tiny_model(ids).logits, atol=1e-4)
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    state = tmp_path / "adapter" / "adapter_model.safetensors"
    from safetensors.torch import load_file, save_file

    tensors = {
        k: torch.zeros(v.shape[0], v.shape[1] * 2) if "lora_A" in k else v
        for k, v in load_file(state).items()
    }
    save_file(tensors, state)
    assert cfg["base_model_name_or_path"]
    with pytest.raises(ValuetraceError, match="does not fit base model"):
        load_model(str(tmp_path / "adapter"))


def _random_lora(model, targets=("q_proj", "v_proj", "down_proj")):
    """A PEFT LoRA model with random (not zero) B, so the adapter changes every output."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=list(targets), init_lora_weights=False)
    return get_peft_model(model, cfg)


def test_merged_hidden_states_equal_base_plus_adapter(tiny_checkpoint):
    """Tolerance 1e-5 (float32): merging only reorders the sum W0 x + s B A x."""
    from valuetrace.models import merge_in_float32

    peft_model = _random_lora(load_model(str(tiny_checkpoint))).eval()
    ids = torch.tensor([[1, 5, 6, 7, 9, 11]])
    with torch.no_grad():
        unmerged = peft_model(ids, output_hidden_states=True).hidden_states
        merged_model = merge_in_float32(peft_model, torch.float32)
        merged = merged_model(ids, output_hidden_states=True).hidden_states
    for layer, (a, b) in enumerate(zip(unmerged, merged, strict=True)):
        assert torch.allclose(a, b, atol=1e-5), f"hidden state {layer} differs"
    assert not torch.allclose(
        unmerged[-1],
        load_model(str(tiny_checkpoint))(ids, output_hidden_states=True).hidden_states[-1],
        atol=1e-3,
    )


def test_a_bf16_merge_is_done_in_float32_and_rounded_once(tiny_checkpoint):
    from valuetrace.models import merge_in_float32

    base = load_model(str(tiny_checkpoint), dtype="bfloat16")
    peft_model = _random_lora(base).to(torch.bfloat16)  # adapters as a bf16 run stores them
    expected = {}
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            a = module.lora_A["default"].weight.float()
            b = module.lora_B["default"].weight.float()
            w0 = module.base_layer.weight.float()
            key = name.removeprefix("base_model.model.") + ".weight"
            expected[key] = (w0 + module.scaling["default"] * (b @ a)).to(torch.bfloat16)
    merged = merge_in_float32(peft_model, torch.bfloat16)
    state = merged.state_dict()
    assert expected and all(p.dtype == torch.bfloat16 for p in merged.parameters())
    for key, weight in expected.items():
        assert torch.equal(state[key], weight), key


def test_an_adapter_recorded_for_another_base_is_refused_naming_both(tmp_path, tiny_checkpoint):
    import shutil

    _random_lora(load_model(str(tiny_checkpoint))).save_pretrained(tmp_path / "adapter")
    other = tmp_path / "other-base"
    shutil.copytree(tiny_checkpoint, other)
    with pytest.raises(
        ValuetraceError,
        match=rf"trained on base model .*{tiny_checkpoint.name}.*stage's base is {other}",
    ):
        load_model(str(other), adapter=str(tmp_path / "adapter"))
    assert load_model(str(tiny_checkpoint), adapter=str(tmp_path / "adapter")) is not None


def test_a_chain_of_unmerged_adapters_merges_in_float32_and_rounds_once(tmp_path, tiny_checkpoint):
    """Stage 2's adapter was trained on stage 1 (base + adapter 1): loading stage 2 in bf16
    gives (W0 + d1 + d2) computed in float32 and rounded once."""
    first = _random_lora(load_model(str(tiny_checkpoint)), targets=("q_proj",))
    first.save_pretrained(tmp_path / "a1")
    stage1 = load_model(str(tmp_path / "a1"))  # merged; records a1 as its name
    torch.manual_seed(1)
    second = _random_lora(stage1, targets=("q_proj",))
    second.save_pretrained(tmp_path / "a2")
    deltas = [
        {
            n: m.get_delta_weight("default")
            for n, m in model.named_modules()
            if hasattr(m, "lora_A") and "default" in m.lora_A
        }
        for model in (first, second)
    ]
    base = load_model(str(tiny_checkpoint)).state_dict()
    chained = load_model(str(tmp_path / "a2"), dtype="bfloat16").state_dict()
    for name, d1 in deltas[0].items():
        key = name.removeprefix("base_model.model.") + ".weight"
        want = (base[key] + d1 + deltas[1][name]).to(torch.bfloat16)
        torch.testing.assert_close(chained[key].float(), want.float(), atol=0, rtol=0)


def test_a_truncated_weight_file_is_a_checkpoint_error_naming_it_and_the_fix(
    tiny_checkpoint, tmp_path
):
    """Issue 20: a truncated model.safetensors ended in a raw SafetensorError."""
    import shutil

    from valuetrace.errors import CheckpointError

    cut = tmp_path / "cut"
    shutil.copytree(tiny_checkpoint, cut)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"{cut}.*truncated or damaged.*valuetrace train"):
        load_model(str(cut))
