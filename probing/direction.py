"""Per-layer unit directions in raw activation space, pointing toward the compassionate class.

Why: a direction is what later steps project, compare across stages and steer along, so it must
live in the raw activation space (not a probe's standardised space), carry which layers and
which model it came from, and refuse activations of another width.

A layer where no direction is defined (every example has the same activations, the class
means coincide, the probe has zero weights) holds a NaN row, and the reason is kept beside it:
such a layer never aborts the others, and everything projected onto it is NaN.

File format (safetensors, ``format_version`` 2):

- tensors: ``vectors`` float32 ``[n_layers, d_model]`` (unit rows, NaN rows at undefined
  layers), ``layers`` int64 ``[n_layers]`` (the model layer index of each row);
- metadata (all strings): ``format`` = ``"valuetrace.direction"``, ``format_version`` = ``"2"``,
  ``kind`` (``"probe"`` or ``"mean_diff"``), ``d_model``, ``n_layers``, ``undefined`` (JSON
  object: model layer index → reason), and each provenance entry as ``provenance.<key>``.
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
from valuetrace.probing.degenerate import constant_layers, undefined_from_json, undefined_to_json
from valuetrace.records import check_version
from valuetrace.stats import check_labels

if TYPE_CHECKING:
    from valuetrace.probing.probe import Probe

FORMAT = "valuetrace.direction"
FORMAT_VERSION = 2
_PROVENANCE = "provenance."


@dataclass(frozen=True)
class Direction:
    """Unit vector per layer; activations of the compassionate class project higher on average.

    ``undefined`` maps each model layer where no direction exists to the reason; its row in
    ``vectors`` is NaN.
    """

    vectors: Float[np.ndarray, "l d"]
    layers: list[int]
    kind: Literal["probe", "mean_diff"]
    provenance: dict[str, str] = field(default_factory=dict)
    undefined: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the shapes agree, every defined row is unit length and undefined rows are NaN."""
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.layers):
            raise DataError(
                f"vectors {self.vectors.shape} and {len(self.layers)} layers disagree; pass "
                "vectors [n_layers, d_model] with one layer index per row"
            )
        if not set(self.undefined) <= set(self.layers):
            raise DataError(
                f"undefined layers {sorted(self.undefined)} are not all among the layers "
                f"{self.layers}; name only layers this direction has"
            )
        undefined = np.array([layer in self.undefined for layer in self.layers], dtype=bool)
        if not np.isnan(self.vectors[undefined]).all():
            raise DataError(
                f"rows of undefined layers {sorted(self.undefined)} must be NaN; set them to NaN"
            )
        norms = np.linalg.norm(self.vectors[~undefined], axis=1)
        if not np.allclose(norms, 1.0, atol=1e-4):
            raise DataError(
                f"direction rows have norms {norms.round(4).tolist()}; normalise each row, or "
                "list a layer without a direction in `undefined` with a NaN row"
            )
        if self.kind not in ("probe", "mean_diff"):
            raise DataError(f"kind is {self.kind!r}; use 'probe' or 'mean_diff'")

    @property
    def d_model(self) -> int:
        """Width of the activations this direction applies to."""
        return int(self.vectors.shape[1])

    @classmethod
    def from_probe(cls, probe: "Probe", provenance: dict[str, str] | None = None) -> "Direction":
        """Probe weights mapped back to raw activations (``w / std``), normalised per layer.

        Layers where the probe is undefined, or has all-zero weights, get a NaN row and a reason.
        """
        layers = list(probe.layers)
        vectors, undefined = _unit_rows(
            probe.coef / probe.std,
            layers,
            probe.undefined,
            "the probe has all-zero weights: the class means coincide, so no direction is "
            "defined here",
        )
        return cls(vectors, layers, "probe", dict(provenance or {}), undefined)

    @classmethod
    def from_mean_difference(
        cls,
        acts: Float[np.ndarray, "l n d"],
        labels: Int[np.ndarray, " n"],
        layers: list[int] | None = None,
        provenance: dict[str, str] | None = None,
    ) -> "Direction":
        """Mean of label-1 activations minus mean of label-0 activations, normalised per layer.

        A layer where every example has the same activations, or where the two class means
        coincide, gets a NaN row and the reason in ``undefined``; the other layers are unaffected.
        Raises ``DataError`` for mismatched shapes or a missing class.
        """
        acts = np.asarray(acts)
        labels = np.asarray(labels)
        if acts.ndim != 3 or acts.shape[1] != len(labels):
            raise DataError(
                f"acts {acts.shape} and {len(labels)} labels disagree; pass acts "
                "[n_layers, n_examples, d_model] with one label per example"
            )
        labels = check_labels(labels, acts.shape[1])
        layers = list(range(acts.shape[0])) if layers is None else list(layers)
        diff = acts[:, labels == 1].mean(1, dtype=np.float64) - acts[:, labels == 0].mean(
            1, dtype=np.float64
        )
        vectors, undefined = _unit_rows(
            diff,
            layers,
            constant_layers(acts, layers),
            "the class means coincide, so no direction is defined here",
        )
        return cls(vectors, layers, "mean_diff", dict(provenance or {}), undefined)

    def project(self, acts: Float[np.ndarray, "l n d"]) -> Float[np.ndarray, "l n"]:
        """Projection of each example onto each layer's direction (NaN at undefined layers)."""
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
            "undefined": undefined_to_json(self.undefined),
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
        check_version(
            "direction format",
            str(path),
            metadata.get("format_version"),
            FORMAT_VERSION,
            FORMAT_VERSION,
            fix="re-save it with this version",
            error=DataError,
        )
        direction = cls(
            vectors=tensors["vectors"].numpy(),
            layers=tensors["layers"].tolist(),
            kind=metadata["kind"],  # type: ignore[arg-type]
            provenance={
                k[len(_PROVENANCE) :]: v for k, v in metadata.items() if k.startswith(_PROVENANCE)
            },
            undefined=undefined_from_json(metadata["undefined"]),
        )
        if d_model is not None and direction.d_model != d_model:
            raise DataError(
                f"{path} holds a direction of width {direction.d_model} but the activations "
                f"have width {d_model}; use a direction saved from the same model"
            )
        return direction


def _unit_rows(
    rows: Float[np.ndarray, "l d"], layers: list[int], known: dict[int, str], zero_reason: str
) -> tuple[Float[np.ndarray, "l d"], dict[int, str]]:
    """Rows scaled to unit length, and the undefined layers (``known`` plus all-zero rows).

    Undefined rows are NaN; ``known`` reasons take precedence over ``zero_reason``.
    """
    norms = np.linalg.norm(rows, axis=1)
    undefined = dict(known)
    for i in np.flatnonzero(~(norms > 0)):  # zero, or NaN from an undefined probe row
        undefined.setdefault(layers[i], zero_reason)
    vectors = np.full(rows.shape, np.nan, dtype=np.float32)
    keep = np.array([layer not in undefined for layer in layers], dtype=bool)
    vectors[keep] = rows[keep] / norms[keep, None]
    return vectors, undefined
