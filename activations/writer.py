"""Writing an activation cache: the file built whole under a temporary name, then rows streamed
in block by block, `rows_done` raised after each, so a killed writer resumes (the layout and the
crash guarantee are in `activations.store`)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from jaxtyping import Float

from valuetrace import __version__
from valuetrace.activations.checksums import meta_checksum, row_checksums
from valuetrace.activations.store import (
    CHUNK_ROWS,
    FORMAT,
    PROVENANCE_KEYS,
    SCHEMA_VERSION,
    Examples,
    check_disk,
    check_matches,
    h5_file,
    open_cache,
    plain,
    required_bytes,
)
from valuetrace.errors import CacheError, ConfigError, DataError, ValuetraceError

_STR = h5py.string_dtype("utf-8")
_WRITE_CACHE_BYTES = 0  # whole-chunk writes go straight to the file; memory stays flat


class CacheWriter:
    """Writes one cache block by block; reopening the same request resumes it."""

    def __init__(self, path: Path, handle: h5py.File) -> None:
        self.path = path
        self._file = handle
        self._hidden = handle["hidden"]
        self._checksum = handle.get("checksum")  # None in a schema 1-2 file (resumed as such)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        provenance: dict[str, str | int],
        layers: Sequence[int],
        d_model: int,
        examples: Examples,
        overwrite: bool = False,
    ) -> CacheWriter:
        """Create a new cache, or resume a half-written one whose provenance matches."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and overwrite:
            path.unlink()
        if path.exists():
            handle = open_cache(path, "r+", _WRITE_CACHE_BYTES)
            try:
                check_matches(path, handle, provenance, layers, d_model, len(examples.ids))
            except ValuetraceError:
                handle.close()
                raise
            return cls(path, handle)
        dtype = str(provenance["dtype"])
        check_disk(path, required_bytes(len(layers), len(examples.ids), d_model, dtype))
        return cls(path, _create(path, provenance, layers, d_model, examples))

    @property
    def rows_done(self) -> int:
        """How many leading rows are safely on disk."""
        return int(self._file.attrs["rows_done"])

    @property
    def complete(self) -> bool:
        """True once every row is written and verified."""
        return bool(self._file.attrs["complete"])

    @property
    def n_rows(self) -> int:
        """How many rows (examples) the cache holds when complete."""
        return int(self._hidden.shape[1])

    @property
    def dtype(self) -> np.dtype:
        """The dtype the hidden states are stored in."""
        return self._hidden.dtype

    def provenance(self) -> dict[str, object]:
        """The request the cache was made for: its provenance entries and `layers`, as plain
        Python values (what a part cache joined into it must match)."""
        attrs = self._file.attrs
        return {k: plain(attrs[k]) for k in (*PROVENANCE_KEYS, "layers") if k in attrs}

    def example_ids(self, start: int, stop: int) -> np.ndarray:
        """The example ids of rows [start, stop)."""
        return self._file["example_id"][start:stop]

    def read(self, start: int, stop: int) -> Float[np.ndarray, "l b d"]:
        """Rows [start, stop) of every layer, read back from the file as stored."""
        return self._hidden[:, start:stop]

    def write(self, start: int, block: Float[np.ndarray, "l b d"]) -> None:
        """Write rows [start, start + b) of every layer, then record them as done.

        A block that holds NaN or inf, or values the cache dtype cannot hold (beyond float16's
        65504), is refused before anything is written: `ConfigError` (overflow: use float32)
        or `DataError` (the model produced them), naming the layers and rows.
        """
        if start != self.rows_done:
            raise CacheError(
                f"{self.path}: a block starts at row {start} but {self.rows_done} rows are done; "
                "write blocks in order, from row `rows_done`."
            )
        stop = start + block.shape[1]
        with np.errstate(over="ignore"):  # an overflow is refused just below, with its fix
            stored = block.astype(self._hidden.dtype, copy=False)
        _check_finite(self.path, self._file.attrs["layers"], start, block, stored)
        self._hidden[:, start:stop, :] = stored
        if self._checksum is not None:
            self._checksum[:, start:stop] = row_checksums(stored)
        self._file.flush()
        self._file.attrs.modify("rows_done", stop)  # in place: no new metadata, see module doc
        self._file.flush()

    def finish(self) -> None:
        """Mark the cache complete (only when every row is written) and close it."""
        n = self._hidden.shape[1]
        if self.rows_done != n:
            raise CacheError(
                f"{self.path}: only {self.rows_done} of {n} rows written; rerun to resume."
            )
        self._file.attrs.modify("complete", True)
        self.close()

    def close(self) -> None:
        """Close the file (safe to call twice)."""
        if self._file.id.valid:
            self._file.close()


def _check_finite(
    path: Path,
    layers: Sequence[int],
    start: int,
    block: Float[np.ndarray, "l b d"],
    stored: np.ndarray,
) -> None:
    """Refuse a block with NaN/inf, or with values that overflow the cache dtype.

    An overflowed value would be stored as inf and surface much later as a NaN probe metric or
    a vague error; here the layer and the fix are named while the cause is known.
    """
    bad = ~np.isfinite(stored)
    if not bad.any():
        return
    layer_idx, row_idx = np.nonzero(bad.any(axis=2))
    where = (
        f"layers {sorted({int(layers[i]) for i in layer_idx})}, rows "
        f"{sorted({start + int(r) for r in row_idx})[:10]}"
    )
    if np.isfinite(block[bad]).all():
        largest = float(np.abs(block[bad]).max())
        raise ConfigError(
            f"activations at {where} reach {largest:.4g}, beyond what the {stored.dtype} cache "
            f"{path} can hold (largest {float(np.finfo(stored.dtype).max):.4g}), so they would be "
            "stored as inf. Extract in float32 (`extract.dtype: float32` in the run config, "
            "`--dtype float32` on the command line) and rerun with --overwrite."
        )
    raise DataError(
        f"the model produced NaN or inf activations at {where} for {path}. Nothing was stored; "
        "load the model in float32 (`model.dtype: float32`, `--model-dtype float32`) or drop "
        "the examples that cause them."
    )


def _create(
    path: Path,
    provenance: dict[str, str | int],
    layers: Sequence[int],
    d_model: int,
    examples: Examples,
) -> h5py.File:
    """Build the whole file under a temporary name, rename it into place and open it."""
    n = len(examples.ids)
    if n == 0:
        raise DataError("the dataset is empty: nothing to extract.")
    staging = path.with_name(path.name + ".creating")
    with h5_file(staging, "w") as handle:
        handle.create_dataset(
            "hidden",
            shape=(len(layers), n, d_model),
            dtype=str(provenance["dtype"]),
            chunks=(1, min(n, CHUNK_ROWS), d_model),
            dcpl=_early(),
        )
        handle.create_dataset(
            "checksum",
            shape=(len(layers), n),
            dtype=np.uint32,
            chunks=(1, min(n, CHUNK_ROWS)),
            dcpl=_early(),
        )
        handle.create_dataset("example_id", data=list(examples.ids), dtype=_STR)
        if examples.labels is not None:
            handle.create_dataset("label", data=np.asarray(examples.labels, dtype=np.int8))
        if examples.scores is not None:
            handle.create_dataset("score", data=np.asarray(examples.scores, dtype=np.float64))
        handle.create_dataset("group_id", data=list(examples.groups), dtype=_STR)
        handle.attrs.update(
            {
                "format": FORMAT,
                "schema_version": SCHEMA_VERSION,
                "valuetrace_version": __version__,
                "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "layers": np.asarray(layers, dtype=np.int64),
                "rows_done": np.int64(0),
                "complete": False,
                "meta_checksum": np.int64(meta_checksum(handle)),
                **provenance,
            }
        )
    os.replace(staging, path)
    return h5_file(path, "r+", _WRITE_CACHE_BYTES)


def _early() -> h5py.h5p.PropDCID:
    """Dataset creation: every chunk placed when the file is built, never later (no metadata
    changes while rows stream in), and no zero-filling (rows come from writes)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl
