"""The layout of a run folder: every file a step reads or writes is named here, nowhere else.

Paths are derived from the run folder's root, so a run folder can be moved or copied and still
runs; anything stored inside the folder refers to its files relative to the root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def stored_path(path: str | Path, root: Path) -> str:
    """How a run folder stores `path`: relative to `root` (posix) when it lies inside the folder,
    otherwise as given (a hub id, or a user's path outside the folder, absolute or not)."""
    text = str(path)
    candidate = Path(text)
    if not candidate.exists():
        return text  # a hub id, or nothing to relate
    try:
        return candidate.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return text


def resolved_path(stored: str, root: Path) -> str:
    """The usable form of a stored path: relative to `root` when it names something there,
    otherwise as stored (a hub id, an absolute path, or a path relative to the cwd)."""
    if not os.path.isabs(stored) and (root / stored).exists():
        return str(root / stored)
    return stored


def trainer_dir(checkpoint: Path) -> Path:
    """The Trainer's own checkpoint folder of a stage (kept beside the stage's output folder
    while it trains, so a killed stage resumes; removed when the stage is done)."""
    return checkpoint.parent / f".{checkpoint.name}.trainer"


def stage_spec(checkpoint: Path) -> Path:
    """The JSON spec a stage's child process(es) train from, beside the stage's output folder."""
    return checkpoint.parent / f".{checkpoint.name}.spec.json"


@dataclass(frozen=True)
class RunPaths:
    """Every file of a run folder, so no step hard-codes another's layout."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def lineage(self) -> Path:
        return self.root / "lineage.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def tokenizer_inputs(self) -> Path:
        """What the run's from-scratch tokenizer was trained on (corpora, hashes, vocab size)."""
        return self.tokenizer / "valuetrace_inputs.json"

    def checkpoint(self, stage: str) -> Path:
        return self.root / "checkpoints" / stage

    def activations(self, dataset: str, stage: str) -> Path:
        return self.root / "activations" / dataset / f"{stage}.h5"

    def probes(self, dataset: str, stage: str) -> Path:
        return self.root / "probes" / dataset / f"{stage}.h5"

    def surface(self, dataset: str) -> Path:
        """The probe set's surface baselines and each stage's gain over them (a JSON record)."""
        return self.root / "probes" / dataset / "surface_baselines.json"

    def behaviour(self, stage: str) -> Path:
        return self.root / "behaviour" / f"{stage}.json"

    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    @property
    def findings(self) -> Path:
        """The analysis record (`valuetrace.analysis.findings.Findings`) the report reads."""
        return self.root / "analysis" / "findings.json"

    def table(self, name: str) -> Path:
        """A long-format CSV the analysis writes for other tools (probes, comparisons, …)."""
        return self.root / "analysis" / f"{name}.csv"

    @property
    def summary(self) -> Path:
        return self.root / "summary.txt"

    @property
    def causal(self) -> Path:
        return self.root / "analysis" / "causal.json"

    @property
    def causal_figure(self) -> Path:
        return self.figure("causal_dose_response")

    @property
    def figures(self) -> Path:
        return self.root / "analysis" / "figures"

    def figure(self, name: str) -> Path:
        """A figure the analysis draws (a PNG named after what it shows)."""
        return self.figures / f"{name}.png"

    @property
    def behaviour_set(self) -> str:
        """The name under which the behaviour eval items' activations are cached beside the
        probe sets (`activations(behaviour_set, stage)`); no probe set may take it."""
        return "behaviour_items"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def log(self) -> Path:
        """The full log of every command run on this folder (the console shows less)."""
        return self.root / "log.txt"

    @property
    def timings(self) -> Path:
        """Wall times per step and stage: they differ by nature, so no result file holds them."""
        return self.root / "timings.json"

    @property
    def environment(self) -> Path:
        """Python, torch, BLAS, threads and CPU each step ran on, to explain cross-machine drift."""
        return self.root / "environment.json"

    def stage_outputs(self, stage: str) -> list[Path]:
        """Every file derived from one stage's checkpoint (caches, probes, behaviour scores)."""
        return [
            *self.root.glob(f"activations/*/{stage}.h5"),
            *self.root.glob(f"probes/*/{stage}.h5"),
            self.behaviour(stage),
        ]

    @property
    def cross_stage_outputs(self) -> list[Path]:
        """Files that compare stages, stale as soon as any one stage changes."""
        surface = sorted(self.root.glob("probes/*/surface_baselines.json"))
        return [*surface, self.analysis, self.report, self.summary]

    def stored(self, path: str | Path) -> str:
        """`path` as this folder stores it (see `stored_path`)."""
        return stored_path(path, self.root)

    def resolved(self, stored: str) -> str:
        """A stored path made usable from any cwd (see `resolved_path`)."""
        return resolved_path(stored, self.root)
