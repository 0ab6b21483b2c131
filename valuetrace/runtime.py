"""What a run's numbers depend on besides its config: seeds, deterministic kernels, threads, and
the machine (recorded in `environment.json`, with wall times apart in `timings.json`).

On one machine, the same config and seed give the same numbers: every step starts from
`seed_everything`, and torch is asked for deterministic kernels (the PyTorch reproducibility
notes: https://pytorch.org/docs/stable/notes/randomness.html). Across machines, the BLAS
library, its thread count and the CPU's vector unit change the order of floating-point sums, so
they are recorded to explain differences, not hidden.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import resource
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from valuetrace import __version__
from valuetrace.errors import ValuetraceError
from valuetrace.records import load_record, save_record

log = logging.getLogger(__name__)


def deterministic_environment() -> None:
    """Environment settings that must precede CUDA's start (cuBLAS's deterministic workspace)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def set_threads(threads: int | Literal["auto"] = "auto") -> int:
    """Set torch's CPU threads (`threads` of the config); returns the count.

    "auto" uses every core unless OMP_NUM_THREADS chose a number; an int fixes the count.
    """
    if threads != "auto":
        torch.set_num_threads(threads)
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    return torch.get_num_threads()


def warn_if_oversubscribed(step: str) -> bool:
    """Log a warning when the machine's load exceeds its cores at the start of `step`.

    The 1-minute load average (`os.getloadavg`) counts runnable threads, this process's
    included, so a load above the core count means other processes compete for the cores. On 2
    cores a SmolLM2 LoRA stage then ran 9-11x slower with one thread per core, as torch's
    threads spin waiting for each other at every operation; the CLI sets OMP_WAIT_POLICY=PASSIVE
    against it, and `threads: 1` halves the loss again (benchmarks/bench_load.py). Returns
    whether it warned.
    """
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    if load <= cores:
        return False
    log.warning(
        "%s: the machine is oversubscribed (load average %.1f on %d cores) with %d torch "
        "threads; a step can run several times slower than alone. Set `threads: 1` in the "
        "config (or fewer than the cores), or run when the machine is quieter.",
        step,
        load,
        cores,
        torch.get_num_threads(),
    )
    return True


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (every device), and ask torch for deterministic kernels.

    Called at the start of every step and stage, so a step's numbers do not depend on what ran
    before it in the same process (a resumed run skips stages). Kernels without a deterministic
    version only warn (`warn_only`), so a GPU run is never refused for one.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"valuetrace": __version__, "python": sys.version.split()[0], "torch": torch.__version__}
    for name in ("transformers", "trl", "peft", "accelerate", "numpy", "scipy", "scikit-learn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def environment_info() -> dict[str, Any]:
    """The machine and libraries a step ran on: Python, package versions, torch's BLAS/LAPACK
    and CPU capability (`torch.__config__`), NumPy's BLAS (threadpoolctl), thread counts, CPU
    model, GPUs, and the environment variables that change numerics."""
    from threadpoolctl import threadpool_info

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "versions": _versions(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch_build": torch.__config__.show(),
        "torch_parallel": torch.__config__.parallel_info(),
        "torch_mkl": torch.backends.mkl.is_available(),
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
        "threadpools": [
            {k: v for k, v in pool.items() if k != "filepath"} for pool in threadpool_info()
        ],
        "cuda": torch.version.cuda,
        "gpus": gpus,
        "env": {
            k: os.environ[k]
            for k in (
                "OMP_NUM_THREADS",
                "OMP_WAIT_POLICY",
                "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "MKL_CBWR",
                "CUBLAS_WORKSPACE_CONFIG",
                "PYTHONHASHSEED",
            )
            if k in os.environ
        },
        "cwd": str(Path.cwd()),
        "argv": list(sys.argv),
    }


@dataclass
class Environment:
    """`environment.json`: per step, the environment it last ran under."""

    SCHEMA: ClassVar[str] = "valuetrace.environment"
    VERSION: ClassVar[int] = 1

    steps: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Timings:
    """`timings.json`: wall seconds per step, per trained stage its seconds and tokens/s, and
    the peak resident memory (MB) reached by the end of each step (`peak_rss_mb`: a running
    maximum, so the step where it jumps is the one that set it; version 1 files lack it)."""

    SCHEMA: ClassVar[str] = "valuetrace.timings"
    VERSION: ClassVar[int] = 2

    steps: dict[str, float] = field(default_factory=dict)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)


def _load_or_new(cls: type, path: Path) -> Any:
    """The record at `path`, or a new empty one when the file is absent or unreadable (these
    files only describe a run; an old one is replaced rather than refused)."""
    if not path.is_file():
        return cls()
    try:
        return load_record(cls, path)
    except ValuetraceError:
        return cls()


def record_environment(path: Path, step: str) -> None:
    """Add (or replace) `step`'s entry in `environment.json`."""
    env = _load_or_new(Environment, path)
    env.steps[step] = environment_info()
    save_record(env, path)


def peak_rss_mb() -> float:
    """The peak resident set size of this process or of its largest finished child (a launched
    training run), in MB, from `getrusage` (`ru_maxrss`: kB on Linux, bytes on macOS)."""
    unit = 1 if sys.platform == "darwin" else 1024
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return peak * unit / 2**20


def record_timing(
    path: Path,
    *,
    step: str | None = None,
    seconds: float = 0.0,
    stage: dict[str, Any] | None = None,
) -> None:
    """Add a step's wall seconds and the peak memory so far, or a stage's (`{"name": ...,
    "train_seconds": ...}`), to `timings.json`."""
    timings = _load_or_new(Timings, path)
    if step is not None:
        timings.steps[step] = seconds
        timings.peak_rss_mb[step] = round(peak_rss_mb(), 1)
    if stage is not None:
        timings.stages[stage["name"]] = {k: v for k, v in stage.items() if k != "name"}
    save_record(timings, path)
