"""The HDF5 activation cache: schema, streaming writes, resume, provenance checks and reads.

Layout of one file (one dataset under one checkpoint), readable with plain h5py or h5dump:

    /hidden       float16|float32 [n_layers, n_examples, d_model], chunks (1, <=256, d_model):
                  reading one layer for all examples touches only that layer's chunks
    /example_id   utf-8 strings [n_examples]
    /label        int8 [n_examples]        (1 = concept present, e.g. compassionate); only
                  when the set is labelled (always present in schema_version 1 files)
    /score        float64 [n_examples]     (a continuous score, e.g. a graded answer); only
                  when the set carries one (schema_version 2 on)
    /group_id     utf-8 strings [n_examples] (contrastive pair id)
    /checksum     uint32 [n_layers, n_examples]: zlib CRC-32 of each row's stored bytes
                  (`hidden[l, i, :]`, little-endian), written with its block (schema_version 3)
    attributes    format="valuetrace.activations", schema_version, layers (int array; 0 =
                  embeddings, l = output of block l-1, before any final norm), rows_done,
                  complete, created_at, meta_checksum (CRC-32 of ids, labels, scores and groups;
                  schema_version 3), and the provenance fields (model_hash, tokenizer_hash,
                  dataset_hash, pooling, dtype, max_length, prompt_format, batch_size,
                  max_batch_tokens, chat_date, chat_render, model, dataset,
                  valuetrace_version).

Rows are written in order, a block at a time, and `rows_done` is raised only after a block is on
disk, so a killed run resumes from `rows_done` and ends byte-identical to an uninterrupted one.
`complete` is set last. A file whose provenance differs from the request is never touched.

Crash guarantee (`kill -9`, OOM kill, Ctrl-C at any instant): the file stays a readable cache
whose first `rows_done` rows are final, and rerunning the same request finishes it. This holds
because no HDF5 metadata changes while rows stream in: the file is built whole (every dataset,
every chunk allocated, every attribute) as `<name>.creating` and renamed into place, so a kill
during creation leaves no cache at `path`; afterwards a block write only overwrites raw chunk
bytes at fixed offsets, then, after a flush, rewrites the `rows_done` value in place (two small
writes to the root group's header, no allocation). Rows past `rows_done` may hold partial data;
they are rewritten on resume. Checked by killing a writer right before each of its file writes
in turn (strace fault injection): every kill point resumed to an identical file. Without this,
HDF5 allocated chunks and grew its chunk index as rows arrived, and 18 of 69 kill points left a
file that no longer opened ("bad object header version number") or that failed on the next write
("addr overflow"). The guarantee covers the process dying, not the machine losing power (the
cache is not fsync'ed).

Bytes changed inside a finished file (a bad disk, a stray write) are caught on read: every row
of every layer has a CRC-32 in `/checksum`, computed from the block already in memory and
written with it (`/checksum` is allocated up front like `/hidden`, so the crash guarantee is
unchanged), and every read recomputes it; the per-example columns are covered by the
`meta_checksum` attribute. A mismatch is a `CacheError` naming the file, layers and rows.
Files of schema versions 1 and 2 have no checksums: they read (and resume) as before,
unverified, and the log says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from jaxtyping import Float

from valuetrace import __version__
from valuetrace.errors import (
    CacheError,
    ConfigError,
    DataError,
    MissingStepError,
    ValuetraceError,
)

FORMAT = "valuetrace.activations"
SCHEMA_VERSION = 3  # 3: /checksum and meta_checksum; 2: /label optional, /score added
CHUNK_ROWS = 256
PROVENANCE_KEYS = (
    "model_hash",
    "tokenizer_hash",
    "dataset_hash",
    "pooling",
    "dtype",
    "max_length",
    "prompt_format",
    "batch_size",
    "max_batch_tokens",
    "chat_date",
    "chat_render",
)
# provenance keys added after caches were first written, with the value an older cache means
LATER_KEYS = {"chat_date": "none", "chat_render": "none"}  # none: plain format, no template
_STR = h5py.string_dtype("utf-8")
_CACHE_BYTES = 64 * 1024 * 1024
_WRITE_CACHE_BYTES = 0  # whole-chunk writes go straight to the file; memory stays flat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Examples:
    """Per-example metadata stored beside the activations (`labels`/`scores` None if absent)."""

    ids: Sequence[str]
    labels: np.ndarray | None
    groups: Sequence[str]
    scores: np.ndarray | None = None


@dataclass(frozen=True)
class Activations:
    """A cache read into memory: `acts` is layer-major [n_layers, n_examples, d_model].

    `labels` raises DataError for a cache of an unlabelled set (check `has_labels`); `scores` is
    None unless the set carried a score.
    """

    acts: Float[np.ndarray, "l n d"]
    layers: list[int]
    ids: list[str]
    stored_labels: np.ndarray | None
    groups: list[str]
    attrs: dict[str, object]
    scores: np.ndarray | None = None

    @property
    def has_labels(self) -> bool:
        """True when the cache holds 0/1 labels."""
        return self.stored_labels is not None

    @property
    def labels(self) -> np.ndarray:
        """The 0/1 labels (int64 [n]); a DataError for an unlabelled cache names the fix."""
        if self.stored_labels is None:
            raise DataError(
                f"the activation cache of dataset {self.attrs.get('dataset')!r} holds no 0/1 "
                "labels (its example set had no 'label' column); probes and class comparisons "
                "need a labelled set: add a label column (1 = concept present) and re-extract."
            )
        return self.stored_labels

    def layer(self, layer: int) -> Float[np.ndarray, "n d"]:
        """The activations of model layer `layer` (an index into `layers`' values)."""
        if layer not in self.layers:
            raise CacheError(f"layer {layer} is not in this cache (layers: {self.layers}).")
        return self.acts[self.layers.index(layer)]


def required_bytes(n_layers: int, n_examples: int, d_model: int, dtype: str) -> int:
    """Bytes the activation array will take on disk (uncompressed)."""
    return n_layers * n_examples * d_model * np.dtype(dtype).itemsize


def check_disk(path: Path, need: int) -> None:
    """Log how much disk a new cache needs (in log.txt; on the console with --verbose), and
    refuse one the disk cannot hold (5% margin)."""
    free = shutil.disk_usage(path.parent).free
    log.info("%s will need %.1f MB (%.0f MB free)", path.name, need / 1e6, free / 1e6)
    if free < need * 1.05:
        raise CacheError(
            f"the cache {path} needs {need / 1e6:.1f} MB but only {free / 1e6:.1f} MB are free; "
            "free disk space, store float16 (`extract.dtype: float16` in the config, `--dtype "
            "float16` on the command line) or fewer layers (`extract.layers`, `--layers`)."
        )


def unopenable(path: Path, err: OSError, damaged_fix: str) -> CacheError:
    """The error for an HDF5 file that h5py would not open: locked, not permitted or damaged.

    `damaged_fix` ends the message for a file that really is truncated or not HDF5.
    h5py 3.16 raises `BlockingIOError` (errno 11, "unable to lock file") when another process
    holds the file open for writing, or open at all when this one wants to write; a filesystem
    without locks (some NFS or Lustre mounts) gives "unable to lock file" with errno 37 (no
    locks available) or 38 (not implemented). Neither means the file is damaged, so neither
    message advises deleting it.
    """
    locking = "set HDF5_USE_FILE_LOCKING=FALSE in the environment"
    if "unable to lock file" in str(err):
        if isinstance(err, BlockingIOError):
            return CacheError(
                f"{path} is locked: another process has it open (a running extraction, probe "
                f"run or reader). The file is not damaged and was left untouched; wait for that "
                f"process to finish (or stop it) and rerun. Only on a filesystem without file "
                f"locks, where no other process uses the file, {locking}. ({err})"
            )
        return CacheError(
            f"{path} could not be locked: this filesystem does not support file locks ({err}). "
            f"The file is not damaged and was left untouched; {locking} and rerun."
        )
    if isinstance(err, PermissionError):
        return CacheError(
            f"{path} cannot be opened: permission denied ({err}). The file was left untouched; "
            "give this user read and write access to it and its folder, or use another path."
        )
    return CacheError(
        f"{path} is not a readable HDF5 file (truncated or damaged: {err}). It was left "
        f"untouched; {damaged_fix}"
    )


def _h5(path: Path, mode: str, cache_bytes: int = _CACHE_BYTES) -> h5py.File:
    """`h5py.File`, with a file that will not open turned into a clear error by cause."""
    try:
        return h5py.File(path, mode, rdcc_nbytes=cache_bytes)
    except OSError as err:
        raise unopenable(path, err, "delete it or rerun with --overwrite to rebuild it.") from err


def _open(path: Path, mode: str, cache_bytes: int = _CACHE_BYTES) -> h5py.File:
    """Open an existing cache file, turning a locked, damaged or foreign file into a clear error."""
    handle = _h5(path, mode, cache_bytes)
    if handle.attrs.get("format") != FORMAT:
        handle.close()
        raise CacheError(
            f"{path} is an HDF5 file but not a valuetrace activation cache (no "
            f"format={FORMAT!r} attribute). It was left untouched; point to another path or "
            "rerun with --overwrite to replace it."
        )
    return handle


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
            handle = _open(path, "r+", _WRITE_CACHE_BYTES)
            try:
                _check_matches(path, handle, provenance, layers, d_model, len(examples.ids))
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


def _meta_checksum(handle: h5py.File) -> int:
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


def _verify_rows(path: Path, handle: h5py.File, index: int, begin: int, data: np.ndarray) -> None:
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


def _verify_meta(path: Path, handle: h5py.File) -> None:
    """Check the per-example columns against `meta_checksum` (files of schema 3 on).

    Raises:
        CacheError: ids, labels, scores or groups changed since written; the file is named.
    """
    if "meta_checksum" in handle.attrs and _meta_checksum(handle) != handle.attrs["meta_checksum"]:
        raise CacheError(
            f"{path} is damaged: its example ids, labels, scores or groups no longer hold the "
            "bytes written (meta_checksum mismatch). Nothing was read from it; rerun the "
            "extraction with --overwrite to rebuild it."
        )


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
    with _h5(staging, "w") as handle:
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
                "meta_checksum": np.int64(_meta_checksum(handle)),
                **provenance,
            }
        )
    os.replace(staging, path)
    return _h5(path, "r+", _WRITE_CACHE_BYTES)


def _early() -> h5py.h5p.PropDCID:
    """Dataset creation: every chunk placed when the file is built, never later (no metadata
    changes while rows stream in), and no zero-filling (rows come from writes)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl


def _check_matches(
    path: Path,
    handle: h5py.File,
    provenance: dict[str, str | int],
    layers: Sequence[int],
    d_model: int,
    n_examples: int,
) -> None:
    """Refuse to resume a cache made for another model, data, pooling or shape."""
    expected: dict[str, object] = {k: provenance[k] for k in PROVENANCE_KEYS if k in provenance}
    expected["layers"] = list(layers)
    expected["shape"] = (len(layers), n_examples, d_model)
    found: dict[str, object] = {k: handle.attrs.get(k, LATER_KEYS.get(k)) for k in expected}
    found["layers"] = [int(x) for x in handle.attrs["layers"]]
    found["shape"] = tuple(handle["hidden"].shape)
    diffs = [k for k in expected if str(expected[k]) != str(found.get(k))]
    if diffs:
        detail = "; ".join(
            f"{k}: cache has {found.get(k)!r}, request has {expected[k]!r}" for k in diffs
        )
        raise CacheError(
            f"{path} was made for a different request ({detail}). It was left untouched; "
            "use another run folder or pass --overwrite to replace it."
        )


def _open_complete(path: Path) -> h5py.File:
    """Open a complete cache read-only; a missing or half-written one is a clear error."""
    if not path.is_file():
        raise MissingStepError(f"no activation cache at {path}; run `valuetrace extract` first.")
    handle = _open(path, "r")
    if not handle.attrs["complete"]:
        done, n = handle.attrs["rows_done"], handle["hidden"].shape[1]
        handle.close()
        raise CacheError(
            f"{path} is half-written ({done} of {n} rows); rerun `valuetrace extract` to finish it."
        )
    return handle


def is_complete(
    path: Path,
    *,
    provenance: dict[str, str | int],
    layers: Sequence[int],
    d_model: int,
    n_examples: int,
) -> bool:
    """True if `path` is a complete cache for this request (read-only; a mismatch is an error)."""
    if not Path(path).exists():
        return False
    with _open(Path(path), "r") as handle:
        _check_matches(Path(path), handle, provenance, layers, d_model, n_examples)
        return bool(handle.attrs["complete"])


def _check_part(source: Path, part: h5py.File, writer: CacheWriter, offset: int) -> None:
    """Refuse to join a part cache made for another request or other rows."""
    target = writer._file
    keys = [k for k in (*PROVENANCE_KEYS, "layers") if k in target.attrs]
    diffs = [k for k in keys if str(_plain(part.attrs.get(k))) != str(_plain(target.attrs[k]))]
    n, ids = part["hidden"].shape[1], part["example_id"][()]
    if diffs or part["hidden"].dtype != writer._hidden.dtype:
        raise CacheError(
            f"{source} was made for a different request ({diffs or 'dtype'} differ from "
            f"{writer.path}); delete it and rerun its extraction."
        )
    if offset + n > writer._hidden.shape[1] or not np.array_equal(
        ids, target["example_id"][offset : offset + n]
    ):
        raise CacheError(
            f"{source} does not hold rows {offset}..{offset + n} of {writer.path} (example ids "
            "differ); delete it and rerun its extraction."
        )


def copy_rows(source: Path, writer: CacheWriter, offset: int) -> int:
    """Write the rows of complete cache `source` into `writer` from row `offset`; returns the end.

    Rows the writer already holds are skipped, so an interrupted join resumes; blocks follow the
    target's chunk boundaries so whole chunks are written.
    """
    with _open_complete(Path(source)) as part:
        _check_part(Path(source), part, writer, offset)
        hidden = part["hidden"]
        end = offset + hidden.shape[1]
        begin = max(writer.rows_done, offset)
        while begin < end:
            stop = min((begin // CHUNK_ROWS + 1) * CHUNK_ROWS, end)
            block = hidden[:, begin - offset : stop - offset]
            for index in range(block.shape[0]):
                _verify_rows(Path(source), part, index, begin - offset, block[index])
            writer.write(begin, block)
            begin = stop
    return end


def verify_rows(source: Path, writer: CacheWriter, offset: int) -> None:
    """Check, reading back from disk, that `writer` holds exactly the rows of `source`."""
    with _open_complete(Path(source)) as part:
        _check_part(Path(source), part, writer, offset)
        hidden = part["hidden"]
        for begin in range(0, hidden.shape[1], CHUNK_ROWS):
            stop = min(begin + CHUNK_ROWS, hidden.shape[1])
            written = writer._hidden[:, offset + begin : offset + stop]
            if not np.array_equal(written, hidden[:, begin:stop]):
                raise CacheError(
                    f"{writer.path} rows {offset + begin}..{offset + stop} differ from {source} "
                    "after the copy; the parts were kept. Delete the joined file and rerun."
                )


def read_activations(path: str | Path, layers: Sequence[int] | None = None) -> Activations:
    """Read a complete cache (all layers or the listed ones) into memory as float32."""
    path = Path(path)
    with _open_complete(path) as handle:
        stored = [int(x) for x in handle.attrs["layers"]]
        chosen = list(stored if layers is None else layers)
        missing = [layer for layer in chosen if layer not in stored]
        if missing:
            raise CacheError(
                f"layers {missing} are not in {path} (it holds layers {stored}); read those, or "
                "extract the missing layers into a new cache."
            )
        if "checksum" in handle:
            _verify_meta(path, handle)
        else:
            log.warning(
                "%s has no checksums (schema_version %s, written before version 3): read "
                "unverified; rerun the extraction with --overwrite to add them",
                path,
                handle.attrs.get("schema_version"),
            )
        hidden = handle["hidden"]
        blocks = []
        for layer in chosen:
            index = stored.index(layer)
            block = hidden[index]
            _verify_rows(path, handle, index, 0, block)
            blocks.append(block)
        acts = np.stack(blocks).astype(np.float32)
        return Activations(
            acts=acts,
            layers=chosen,
            ids=[s.decode() if isinstance(s, bytes) else s for s in handle["example_id"][()]],
            stored_labels=handle["label"][()].astype(np.int64) if "label" in handle else None,
            groups=[s.decode() if isinstance(s, bytes) else s for s in handle["group_id"][()]],
            attrs={k: _plain(v) for k, v in handle.attrs.items()},
            scores=handle["score"][()].astype(np.float64) if "score" in handle else None,
        )


def _plain(value: object) -> object:
    """HDF5 attribute values as JSON-friendly Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
