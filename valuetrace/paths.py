"""The layout of a run folder: every file a step reads or writes is named here, nowhere else.

Paths are derived from the run folder's root, so a run folder can be moved or copied and still
runs; anything stored inside the folder refers to its files relative to the root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
    def causal(self) -> Path:
        return self.root / "analysis" / "causal.json"

    @property
    def causal_figure(self) -> Path:
        return self.figures / "causal_dose_response.png"

    @property
    def figures(self) -> Path:
        return self.root / "analysis" / "figures"

    @property
    def report(self) -> Path:
        return self.root / "report.html"
