"""Per-layer unit directions in raw activation space, pointing toward the compassionate class.

Why: a direction is what later steps project, compare across stages and steer along, so it must
live in the raw activation space (not a probe's standardised space), carry which layers and
which model it came from, and refuse activations of another width.

File format (safetensors, ``format_version`` 1):

- tensors: ``vectors`` float32 ``[n_layers, d_model]`` (unit rows), ``layers`` int64
  ``[n_layers]`` (the model layer index of each row);
- metadata (all strings): ``format`` = ``"valuetrace.direction"``, ``format_version`` = ``"1"``,
  ``kind`` (``"probe"`` or ``"mean_diff"``), ``d_model``, ``n_layers``, and each provenance
  entry as ``provenance.<key>``.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from valuetrace.errors import DataError
from valuetrace.stats import check_labels

if TYPE_CHECKING:
    from valuetrace.probing.probe import Probe

FORMAT = "valuetrace.direction"
FORMAT_VERSION = 1
_PROVENANCE = "provenance."


@dataclass(frozen=True)
class Direction:
    """Unit vector per layer; activations of the compassionate class project higher on average."""

    vectors: Float[np.ndarray, "l d"]
    layers: list[int]
    kind: Literal["probe", "mean_diff"]
    provenance: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the shapes agree and every row is unit length."""
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.layers):
            raise DataError(
                f"vectors {self.vectors.shape} and {len(self.layers)} layers disagree; pass "
                "vectors [n_layers, d_model] with one layer index per row"
            )
        norms = np.linalg.norm(self.vectors, axis=1)
        if not np.allclose(norms, 1.0, atol=1e-4):
            raise DataError(
                f"direction rows have norms {norms.round(4).tolist()}; normalise each row"
            )
        if self.kind not in ("probe", "mean_diff"):
            raise DataError(f"kind is {self.kind!r}; use 'probe' or 'mean_diff'")

    @property
    def d_model(self) -> int:
        """Width of the activations this direction applies to."""
        return int(self.vectors.shape[1])

    @classmethod
    def from_probe(cls, probe: "Probe", provenance: dict[str, str] | None = None) -> "Direction":
        """Probe weights mapped back to raw activations (``w / std``), normalised per layer."""
        raw = probe.coef / probe.std
        return cls(
            vectors=_unit_rows(raw, "the probe has all-zero weights at layers"),
            layers=list(probe.layers),
            kind="probe",
            provenance=dict(provenance or {}),
        )

    @classmethod
    def from_mean_difference(
        cls,
        acts: Float[np.ndarray, "l n d"],
        labels: Int[np.ndarray, " n"],
        layers: list[int] | None = None,
        provenance: dict[str, str] | None = None,
    ) -> "Direction":
        """Mean of label-1 activations minus mean of label-0 activations, normalised per layer."""
        acts = np.asarray(acts)
        labels = np.asarray(labels)
        if acts.ndim != 3 or acts.shape[1] != len(labels):
            raise DataError(
                f"acts {acts.shape} and {len(labels)} labels disagree; pass acts "
                "[n_layers, n_examples, d_model] with one label per example"
            )
        labels = check_labels(labels, acts.shape[1])
        diff = acts[:, labels == 1].mean(1, dtype=np.float64) - acts[:, labels == 0].mean(
            1, dtype=np.float64
        )
        return cls(
            vectors=_unit_rows(diff, "the class means coincide at layers"),
            layers=list(range(acts.shape[0])) if layers is None else list(layers),
            kind="mean_diff",
            provenance=dict(provenance or {}),
        )

    def project(self, acts: Float[np.ndarray, "l n d"]) -> Float[np.ndarray, "l n"]:
        """Projection of each example onto each layer's direction."""
        acts = np.asarray(acts)
        if acts.ndim != 3:
            raise DataError(f"acts has shape {acts.shape}; pass [n_layers, n_examples, d_model]")
        if acts.shape[2] != self.d_model:
            raise DataError(
                f"activations have width {acts.shape[2]} but this direction has width "
                f"{self.d_model}; project activations from the model the direction came from"
            )
        if acts.shape[0] != len(self.layers):
            raise DataError(
                f"activations have {acts.shape[0]} layers but this direction has "
                f"{len(self.layers)} (layers {self.layers}); select the same layers"
            )
        return np.einsum("lnd,ld->ln", acts, self.vectors.astype(acts.dtype, copy=False))

    def save(self, path: str | Path) -> None:
        """Write the direction as a safetensors file (format in the module docstring)."""
        metadata = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "kind": self.kind,
            "d_model": str(self.d_model),
            "n_layers": str(len(self.layers)),
        }
        metadata.update({_PROVENANCE + k: str(v) for k, v in self.provenance.items()})
        tensors = {
            "vectors": torch.from_numpy(np.ascontiguousarray(self.vectors, dtype=np.float32)),
            "layers": torch.tensor(self.layers, dtype=torch.int64),
        }
        save_file(tensors, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: str | Path, d_model: int | None = None) -> "Direction":
        """Read a direction file; with ``d_model``, refuse a direction of another width."""
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise DataError(
                f"{path} is not a readable safetensors file ({err}); pass a file written by "
                "Direction.save"
            ) from err
        if metadata.get("format") != FORMAT or not {"vectors", "layers"} <= tensors.keys():
            raise DataError(
                f"{path} is not a valuetrace direction file (format {metadata.get('format')!r}); "
                "pass a file written by Direction.save"
            )
        if metadata.get("format_version") != str(FORMAT_VERSION):
            raise DataError(
                f"{path} has direction format_version {metadata.get('format_version')}, this "
                f"valuetrace reads {FORMAT_VERSION}; re-save it with this version"
            )
        direction = cls(
            vectors=tensors["vectors"].numpy(),
            layers=tensors["layers"].tolist(),
            kind=metadata["kind"],  # type: ignore[arg-type]
            provenance={
                k[len(_PROVENANCE) :]: v for k, v in metadata.items() if k.startswith(_PROVENANCE)
            },
        )
        if d_model is not None and direction.d_model != d_model:
            raise DataError(
                f"{path} holds a direction of width {direction.d_model} but the activations "
                f"have width {d_model}; use a direction saved from the same model"
            )
        return direction


def _unit_rows(rows: Float[np.ndarray, "l d"], zero_message: str) -> Float[np.ndarray, "l d"]:
    """Rows scaled to unit length; all-zero rows are an error."""
    norms = np.linalg.norm(rows, axis=1)
    if np.any(norms == 0):
        raise DataError(
            f"{zero_message} {np.flatnonzero(norms == 0).tolist()}; no direction is defined there"
        )
    return (rows / norms[:, None]).astype(np.float32)
