"""Checksums of an activation cache: a CRC-32 per stored row of every layer (`/checksum`) and one
over the per-example columns (`meta_checksum`), written with the data and checked on every read,
so bytes changed inside a finished file are caught (see `activations.store`)."""

from __future__ import annotations

import zlib
from pathlib import Path

import h5py
import numpy as np

from valuetrace.errors import CacheError


def row_checksums(stored: np.ndarray) -> np.ndarray:
    """zlib CRC-32 of each row's bytes as stored (little-endian), uint32 [n_layers, n_rows].

    `stored` is `[n_layers, n_rows, d_model]` in the cache's dtype. CRC-32 (zlib, as in gzip
    and PNG) detects any change of up to 32 consecutive bits and all but 2^-32 of the rest; a
    reader can recompute it with `zlib.crc32(f["hidden"][l, i].astype("<f4").tobytes())`.
    """
    rows = np.ascontiguousarray(stored, dtype=stored.dtype.newbyteorder("<"))
    out = np.empty(rows.shape[:2], dtype=np.uint32)
    for layer in range(rows.shape[0]):
        for row in range(rows.shape[1]):
            out[layer, row] = zlib.crc32(rows[layer, row])
    return out


def meta_checksum(handle: h5py.File) -> int:
    """CRC-32 over the per-example columns (ids, labels, scores, groups) as stored."""
    crc = 0
    for name in ("example_id", "label", "score", "group_id"):
        if name in handle:
            values = handle[name][()]
            if values.dtype.kind == "O":  # variable-length strings
                data = b"\0".join(v if isinstance(v, bytes) else v.encode() for v in values)
            else:
                data = np.ascontiguousarray(values, values.dtype.newbyteorder("<")).tobytes()
            crc = zlib.crc32(name.encode() + b"\0" + data, crc)
    return crc


def verify_layer_rows(
    path: Path, handle: h5py.File, index: int, begin: int, data: np.ndarray
) -> None:
    """Check rows [begin, begin + len(data)) of stored layer `index` against `/checksum`.

    Raises:
        CacheError: a row's bytes differ from those written; the file, layer and rows are named.
    """
    if "checksum" not in handle:
        return
    stop = begin + data.shape[0]
    bad = np.nonzero(row_checksums(data[None])[0] != handle["checksum"][index, begin:stop])[0]
    if bad.size:
        layer = int(handle.attrs["layers"][index])
        rows = [begin + int(r) for r in bad[:10]]
        raise CacheError(
            f"{path} is damaged: layer {layer}, rows {rows}"
            + (f" and {bad.size - 10} more" if bad.size > 10 else "")
            + " no longer hold the bytes written (checksum mismatch). Nothing was read from it; "
            "rerun `valuetrace extract --overwrite` (or the extraction with --overwrite) to "
            "rebuild it."
        )


def verify_meta(path: Path, handle: h5py.File) -> None:
    """Check the per-example columns against `meta_checksum` (files of schema 3 on).

    Raises:
        CacheError: ids, labels, scores or groups changed since written; the file is named.
    """
    if "meta_checksum" in handle.attrs and meta_checksum(handle) != handle.attrs["meta_checksum"]:
        raise CacheError(
            f"{path} is damaged: its example ids, labels, scores or groups no longer hold the "
            "bytes written (meta_checksum mismatch). Nothing was read from it; rerun the "
            "extraction with --overwrite to rebuild it."
        )
