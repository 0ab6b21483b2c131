"""A real `kill -9` mid-extraction, then a rerun, ends identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import CORPUS

REPO = Path(__file__).resolve().parents[2]
N = 2000


def write_probe_set(path: Path, n: int) -> Path:
    """A JSONL probe set of `n` short prompt/response rows of varied length."""
    with path.open("w") as fh:
        for i in range(n):
            row = {
                "id": f"e{i}",
                "prompt": f"Q: what did the {CORPUS[i % len(CORPUS)].split()[1]} do? A:",
                "response": " " + CORPUS[(7 * i) % len(CORPUS)] * (1 + i % 3),
                "label": i % 2,
                "pair_id": f"p{i // 2}",
            }
            fh.write(json.dumps(row) + "\n")
    return path


def extract_command(checkpoint: Path, examples: Path, out: Path) -> list[str]:
    """The `python -m valuetrace.activations` command line used by the subprocess tests."""
    return [
        sys.executable,
        "-m",
        "valuetrace.activations",
        "--checkpoint",
        str(checkpoint),
        "--examples",
        str(examples),
        "--out",
        str(out),
        "--batch-size",
        "32",
        "--max-length",
        "64",
        "--log-blocks",
    ]


def subprocess_env() -> dict[str, str]:
    """Offline, one thread (light on shared machines, and the same in every run)."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def _contents(path: Path) -> dict[str, object]:
    with h5py.File(path, "r") as fh:
        return {
            "hidden": fh["hidden"][()],
            "ids": fh["example_id"][()].tolist(),
            "labels": fh["label"][()],
            "groups": fh["group_id"][()].tolist(),
            "rows_done": int(fh.attrs["rows_done"]),
            "complete": bool(fh.attrs["complete"]),
        }


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path, tiny_checkpoint):
    examples = write_probe_set(tmp_path / "probe.jsonl", N)
    whole, killed = tmp_path / "whole.h5", tmp_path / "killed.h5"
    env = subprocess_env()
    subprocess.run(
        extract_command(tiny_checkpoint, examples, whole),
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )

    proc = subprocess.Popen(
        extract_command(tiny_checkpoint, examples, killed),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # one line per block on disk; kill while the next one is in flight
        if line.startswith("rows_done=") and int(line.split("=")[1]) >= 512:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    cut = _contents(killed)
    assert 512 <= cut["rows_done"] < N and not cut["complete"]

    rerun = subprocess.run(
        extract_command(tiny_checkpoint, examples, killed),
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    first = int(rerun.stdout.split()[0].split("=")[1])
    assert first == min(cut["rows_done"] + 256, N)  # it resumed instead of starting over
    a, b = _contents(whole), _contents(killed)
    assert np.array_equal(a["hidden"], b["hidden"])  # no duplicate, missing or changed rows
    assert a["ids"] == b["ids"] and a["groups"] == b["groups"]
    assert np.array_equal(a["labels"], b["labels"])
    assert b["rows_done"] == N and b["complete"]
