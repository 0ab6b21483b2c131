"""Sharded extraction: ranges, the join (in process) and a real 2-process torchrun."""

from __future__ import annotations

import itertools
import subprocess
import sys

import h5py
import numpy as np
import pytest

from tests.activations.test_extract import PROVENANCE, _examples
from tests.activations.test_resume_kill import (
    REPO,
    extract_command,
    subprocess_env,
    write_probe_set,
)
from valuetrace.activations.examples import load_labelled
from valuetrace.activations.extract import extract_to_cache
from valuetrace.activations.shard import extract_sharded, join_shards, shard_path, shard_range
from valuetrace.activations.store import read_activations
from valuetrace.errors import ValuetraceError

SETTINGS = {"pooling": "mean", "batch_size": 16, "max_length": 64, "progress": False}


def test_shards_are_contiguous_balanced_and_cover_every_row(tmp_path):
    for n, world in [(10, 3), (2, 4), (1000, 2), (7, 7)]:
        ranges = [shard_range(n, rank, world) for rank in range(world)]
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        sizes = [stop - start for start, stop in ranges]
        assert max(sizes) - min(sizes) <= 1
    assert shard_path(tmp_path / "acts.h5", 1, 4) == tmp_path / "acts.rank1-of-4.h5"


def test_two_ranks_in_turn_join_to_the_single_process_cache(tmp_path, tiny_model, tiny_tokenizer):
    data = _examples(300)
    single = extract_to_cache(
        tiny_model,
        tiny_tokenizer,
        data,
        tmp_path / "one.h5",
        provenance=PROVENANCE,
        **SETTINGS,
    )
    out = tmp_path / "joined.h5"
    for rank in (1, 0):  # rank 0 last: its second barrier is where every shard is complete
        extract_sharded(
            tiny_model,
            tiny_tokenizer,
            data,
            out,
            rank=rank,
            world=2,
            barrier=lambda: None,
            provenance=PROVENANCE,
            **SETTINGS,
        )
    one, joined = read_activations(single), read_activations(out)
    assert joined.ids == one.ids and joined.groups == one.groups
    np.testing.assert_allclose(joined.acts, one.acts, atol=1e-6, rtol=0)
    assert not shard_path(out, 0, 2).exists() and not shard_path(out, 1, 2).exists()
    before = out.read_bytes()
    extract_sharded(
        tiny_model,
        tiny_tokenizer,
        data,
        out,
        rank=0,
        world=2,
        barrier=lambda: None,
        provenance=PROVENANCE,
        **SETTINGS,
    )
    assert out.read_bytes() == before  # a finished request is left as is


def test_a_shard_of_other_rows_is_refused_and_kept(tmp_path, tiny_model, tiny_tokenizer):
    data = _examples(40)
    out = tmp_path / "joined.h5"
    first = type(data)(
        data.ids[:20], data.prompts[:20], data.responses[:20], data.labels[:20], data.groups[:20]
    )
    for rank in (0, 1):  # both shards hold rows 0..20, so rank 1's rows are the wrong ones
        extract_to_cache(
            tiny_model,
            tiny_tokenizer,
            first,
            shard_path(out, rank, 2),
            provenance=PROVENANCE,
            **SETTINGS,
        )
    with pytest.raises(ValuetraceError, match=r"does not hold rows 20\.\.40"):
        join_shards(out, 2, data, provenance=PROVENANCE, layers=[0, 1, 2], d_model=32)
    assert shard_path(out, 1, 2).exists()
    with h5py.File(out, "r") as fh:
        assert fh.attrs["rows_done"] == 20 and not fh.attrs["complete"]


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_equals_one_process(tmp_path, tiny_checkpoint):
    examples = write_probe_set(tmp_path / "probe.jsonl", 600)
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    env = subprocess_env()
    subprocess.run(
        extract_command(tiny_checkpoint, examples, one),
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    command = launcher + extract_command(tiny_checkpoint, examples, two)[1:]
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
    a, b = read_activations(one), read_activations(two)
    assert b.ids == a.ids == load_labelled(examples).ids
    np.testing.assert_allclose(b.acts, a.acts, atol=1e-6, rtol=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.h5", "probe.jsonl", "two.h5"]
