"""The prepared GPU check: valuetrace's paths on a Llama-3.1-8B-shaped model, in one short run.

A device machine has no model weights and no network, so the model is built there with random
weights of the real shape (`--shape 8b`: Llama-3.1-8B's LlamaConfig, hidden 4096, 32 blocks,
32 heads / 8 KV heads, MLP 14336, vocab 128256, bf16, about 16 GB), directly on the device
(`torch.device` context: no CPU copy), and fed random token ids of realistic lengths. It
measures, and writes to one JSON (`--out`) and one printed table:

    extract   valuetrace `extract_to_cache` (hooks, every layer, mean pooling, HDF5 write)
              against the bare decoder body forward on the same length-sorted batches:
              throughput ratio body/extract... reported as extract's share of the body's
              throughput (goal >= 0.90); the peak GPU memory of each
    padding   one batch of mixed lengths, left-padded and right-padded: NaN rows (must be 0)
              and the largest difference between the two (bf16 rounding only)
    lora      one LoRA (r 16, all linear layers) training configuration, timed over a few
              steps after a warm-up step: valuetrace's stage trainer (`training.stages.
              sft_trainer`, its own defaults; needs trl and datasets, skipped and said so
              where they are missing) against a plain PyTorch loop (forward, backward, AdamW)
              on the same model, batch and length: tokens/s and peak memory
    full      the same for full-parameter training, on the 8B shape cut to `--full-layers`
              blocks (default 8: 2.8 B parameters; bf16 weights, gradients and AdamW states
              take ~34 GB, where the whole 8B model would need ~130 GB with its optimizer)
    generate  batched greedy generation (`model.generate`, left-padded prompts, a fixed
              number of new tokens): new tokens/s; and vLLM's (random "dummy" weights of the
              same config) when vLLM is importable

`--shape tiny` runs the same code on a 2-block model on the CPU in seconds (tests/benchmarks/
test_device_check.py), so the script cannot rot. See benchmarks/README.md for the device run.

    python benchmarks/device_check.py --shape 8b --out device_check.json     # ~3-5 min, 1 GPU
    python benchmarks/device_check.py --shape tiny --device cpu --out /tmp/tiny.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import valuetrace  # noqa: E402

if importlib.util.find_spec("valuetrace.activations") is None:
    # a working tree that is not pip-installed (a device machine): the design card's folders
    # are valuetrace's subpackages (pyproject's package-dir), found through its search path
    valuetrace.__path__.append(str(ROOT))

from valuetrace.activations.examples import LabelledExamples  # noqa: E402
from valuetrace.activations.extract import (  # noqa: E402
    extract_to_cache,
    length_batches,
    pooled_hidden_states,
)
from valuetrace.activations.pooling import Batch, collate, encode  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_extract import build_tokenizer  # noqa: E402
from device_model import SHAPES, Shape, as_text, build_model, peak_memory, random_rows, timed  # noqa: E402
from device_training import check_training  # noqa: E402


@torch.inference_mode()
def body_forward(model: LlamaForCausalLM, batches: list[Batch], device: torch.device) -> None:
    """The floor: the decoder body over every batch, nothing pooled or kept."""
    for b in batches:
        model.model(
            input_ids=b.input_ids.to(device, non_blocking=True),  # as extraction copies them
            attention_mask=b.attention_mask.to(device, non_blocking=True),
            position_ids=b.position_ids.to(device, non_blocking=True),
            use_cache=False,
        )


def check_extract(model, tokenizer, shape: Shape, device: torch.device, tmp: Path) -> dict:
    """valuetrace extraction with the HDF5 write against the bare body, best of 2 rounds each."""
    rows = random_rows(shape, np.random.default_rng(0))
    n = len(rows)
    data = LabelledExamples(
        [f"r{i}" for i in range(n)],
        [""] * n,
        [as_text(r) for r in rows],
        np.arange(n) % 2,
        [f"g{i}" for i in range(n)],
    )
    encoded = encode(tokenizer, data.prompts, data.responses, shape.max_len)
    assert [e.ids for e in encoded] == rows, "the word-level tokenizer must give the ids back"
    batches = [
        collate([encoded[i] for i in idx], 0, None, "mean")
        for idx in length_batches([len(r) for r in rows], shape.extract_batch)
    ]
    tokens = sum(len(r) for r in rows)

    def extract() -> None:
        extract_to_cache(
            model,
            tokenizer,
            data,
            tmp / "extract.h5",
            provenance={"check": "device", "dtype": "float32"},
            pooling="mean",
            batch_size=shape.extract_batch,
            max_length=shape.max_len,
            overwrite=True,
            progress=False,
        )

    body_forward(model, batches[:1], device)  # warm up kernels and the allocator
    body_mem: dict[str, Any] = {}
    extract_mem: dict[str, Any] = {}
    body, ours = [], []
    for _ in range(2):
        with peak_memory(device, body_mem):
            body.append(timed(device, lambda: body_forward(model, batches, device)))
        with peak_memory(device, extract_mem):
            ours.append(timed(device, extract))
    return {
        "rows": n,
        "tokens": tokens,
        "layers": model.config.num_hidden_layers + 1,
        "body_tokens_per_s": tokens / min(body),
        "extract_tokens_per_s": tokens / min(ours),
        "throughput_ratio": min(body) / min(ours),
        "goal": ">= 0.90",
        "body_seconds": body,
        "extract_seconds": ours,
        "body_peak_gb": body_mem["peak_gb"],
        "extract_peak_gb": extract_mem["peak_gb"],
    }


def check_padding(model, tokenizer, shape: Shape) -> dict:
    """Left- vs right-padded pooled vectors of one mixed-length batch: NaN rows and max diff."""
    rows = random_rows(shape, np.random.default_rng(1))[: shape.extract_batch]
    encoded = encode(tokenizer, [""] * len(rows), [as_text(r) for r in rows], shape.max_len)
    layers = list(range(model.config.num_hidden_layers + 1))
    out = {}
    for side in ("left", "right"):
        batch = collate(encoded, 0, None, "mean", padding_side=side)
        out[side] = pooled_hidden_states(model, batch, layers).float().cpu()
    nan_rows = int((~torch.isfinite(out["left"]).all(-1).all(0)).sum())
    scale = out["right"].abs().amax(dim=(1, 2)).clamp(min=1.0)[:, None, None]
    return {
        "rows": len(rows),
        "lengths": [min(map(len, rows)), max(map(len, rows))],
        "nan_rows_left": nan_rows,
        "max_diff_left_vs_right_per_layer_scale": float(
            ((out["left"] - out["right"]).abs() / scale).max()
        ),
    }


@torch.inference_mode()
def check_generate(model, shape: Shape, device: torch.device) -> dict:
    """Batched greedy generation of `gen_new` tokens after left-padded prompts: new tokens/s."""
    rng = np.random.default_rng(3)
    lengths = rng.integers(shape.gen_prompt // 2, shape.gen_prompt + 1, size=shape.gen_batch)
    ids = torch.zeros(shape.gen_batch, shape.gen_prompt, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, shape.gen_prompt - n :] = torch.from_numpy(rng.integers(2, shape.vocab, size=n))
        mask[i, shape.gen_prompt - n :] = 1
    model.eval()

    def generate() -> None:
        model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=shape.gen_new,
            min_new_tokens=shape.gen_new,
            do_sample=False,
            pad_token_id=0,
        )

    generate()  # warm up
    mem: dict[str, Any] = {}
    with peak_memory(device, mem):
        seconds = timed(device, generate)
    return {
        "batch": shape.gen_batch,
        "prompt_max": shape.gen_prompt,
        "new_tokens": shape.gen_new,
        "tokens_per_s": shape.gen_batch * shape.gen_new / seconds,
        "peak_gb": mem["peak_gb"],
    }


def check_vllm(model_config: LlamaConfig, shape: Shape, tmp: Path) -> dict:
    """vLLM's batched generation on dummy (random) weights of the same config, if importable."""
    if importlib.util.find_spec("vllm") is None:
        return {"note": "vllm not importable here; skipped"}
    try:
        from vllm import LLM, SamplingParams

        folder = tmp / "vllm_model"
        model_config.save_pretrained(folder)
        build_tokenizer(shape.vocab).save_pretrained(folder)
        llm = LLM(model=str(folder), load_format="dummy", dtype=shape.dtype, enforce_eager=True)
        rng = np.random.default_rng(3)
        prompts = [
            {"prompt_token_ids": rng.integers(2, shape.vocab, size=shape.gen_prompt).tolist()}
            for _ in range(shape.gen_batch)
        ]
        params = SamplingParams(
            max_tokens=shape.gen_new, min_tokens=shape.gen_new, temperature=0.0, ignore_eos=True
        )
        llm.generate(prompts, params)  # warm up
        start = time.perf_counter()
        llm.generate(prompts, params)
        return {"tokens_per_s": shape.gen_batch * shape.gen_new / (time.perf_counter() - start)}
    except Exception as err:  # an optional column: its failure is reported, not fatal
        return {"error": f"{type(err).__name__}: {err}"[:500]}


def _cell(value: float | None, spec: str) -> str:
    """A number formatted by `spec`, or '-' when it was not measured."""
    return "-" if value is None else format(value, spec)


def print_table(result: dict) -> None:
    """The JSON's figures as one table."""
    ex, pad, gen, vllm = result["extract"], result["padding"], result["generate"], result["vllm"]
    print(
        f"device {result['device']} | shape {result['shape']} ({result['params_b']:.2f} B "
        f"params, {result['dtype']}) | torch {result['torch']} | {result['seconds']:.0f} s"
    )
    print(f"{'check':<32}{'valuetrace':>12}{'floor':>12}{'ratio':>8}{'peak GB (vt/floor)':>20}")
    rows = [
        (
            "extract + HDF5 (tok/s)",
            ex["extract_tokens_per_s"],
            ex["body_tokens_per_s"],
            ex["throughput_ratio"],
            (ex["extract_peak_gb"], ex["body_peak_gb"]),
            "floor: bare body forward; goal >= 0.90",
        )
    ]
    for method in ("lora", "full"):
        tr = result[method]
        rows.append(
            (
                f"{method} train step (tok/s)",
                tr["valuetrace_tokens_per_s"],
                tr["plain_tokens_per_s"],
                tr.get("ratio"),
                (tr.get("valuetrace_peak_gb"), tr["plain_peak_gb"]),
                "floor: plain PyTorch loop"
                + (f"; {result['full_layers']} blocks" if method == "full" else ""),
            )
        )
    rows.append(
        (
            "generate (new tok/s)",
            gen["tokens_per_s"],
            vllm.get("tokens_per_s"),
            None,
            (gen["peak_gb"], None),
            "floor column: vLLM",
        )
    )
    for name, ours, floor, ratio, (peak, floor_peak), note in rows:
        print(
            f"{name:<32}{_cell(ours, '.0f'):>12}{_cell(floor, '.0f'):>12}{_cell(ratio, '.3f'):>8}"
            f"{f'{peak} / {floor_peak}':>20}   {note}"
        )
    diff = pad["max_diff_left_vs_right_per_layer_scale"]
    print(
        f"left padding: {pad['nan_rows_left']} NaN rows of {pad['rows']}; max |left - right| / "
        f"layer scale {diff:.1e} | vLLM: {vllm}"
    )
    for method in ("lora", "full"):
        if "valuetrace_note" in result[method]:
            print(f"{method}: {result[method]['valuetrace_note']}")


def main(argv: Sequence[str] | None = None) -> dict:
    """Run every check on one shape, write the JSON, print the table; returns the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="8b")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="device_check.json", help="the JSON written")
    parser.add_argument("--full-layers", type=int, default=None, help="blocks of the full step")
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help="extraction rows (default: the shape's); a longer run tells a cost per file "
        "(tokenising the first block, writing the last) from a cost per row",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    start = time.perf_counter()
    shape, device = SHAPES[args.shape], torch.device(args.device)
    if args.rows is not None:
        shape = replace(shape, rows=args.rows)
    full_layers = args.full_layers or shape.full_layers
    tokenizer = build_tokenizer(shape.vocab)
    tokenizer.eos_token = "t1"  # id 1: the config's EOS, which packed documents end with
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "shape": args.shape,
        "dtype": shape.dtype,
        "sizes": asdict(shape),
        "full_layers": full_layers,
        "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        model = build_model(shape, device)
        result["params_b"] = sum(p.numel() for p in model.parameters()) / 1e9
        result["extract"] = check_extract(model, tokenizer, shape, device, tmp)
        result["padding"] = check_padding(model, tokenizer, shape)
        result["generate"] = check_generate(model, shape, device)
        result["lora"] = check_training(model, tokenizer, "lora", shape, device, tmp)
        config = model.config
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
        small = build_model(shape, device, layers=full_layers)
        result["full"] = check_training(small, tokenizer, "full", shape, device, tmp)
        del small
        if device.type == "cuda":
            torch.cuda.empty_cache()
        result["vllm"] = check_vllm(config, shape, tmp)
    result["seconds"] = time.perf_counter() - start
    Path(args.out).write_text(json.dumps(result, indent=2))
    print_table(result)
    return result


if __name__ == "__main__":
    main()
