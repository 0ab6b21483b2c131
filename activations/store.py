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

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from jaxtyping import Float

from valuetrace.activations.checksums import verify_layer_rows, verify_meta
from valuetrace.errors import (
    CacheError,
    DataError,
    MissingStepError,
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
    "shared_prefixes",
)
# provenance keys added after caches were first written, with the value an older cache means
# (chat "none": plain format, no template; shared prefixes: on since extraction had them)
LATER_KEYS = {"chat_date": "none", "chat_render": "none", "shared_prefixes": "on"}
_CACHE_BYTES = 64 * 1024 * 1024

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


def h5_file(path: Path, mode: str, cache_bytes: int = _CACHE_BYTES) -> h5py.File:
    """`h5py.File`, with a file that will not open turned into a clear error by cause."""
    try:
        return h5py.File(path, mode, rdcc_nbytes=cache_bytes)
    except OSError as err:
        raise unopenable(path, err, "delete it or rerun with --overwrite to rebuild it.") from err


def open_cache(path: Path, mode: str, cache_bytes: int = _CACHE_BYTES) -> h5py.File:
    """Open an existing cache file, turning a locked, damaged or foreign file into a clear error."""
    handle = h5_file(path, mode, cache_bytes)
    if handle.attrs.get("format") != FORMAT:
        handle.close()
        raise CacheError(
            f"{path} is an HDF5 file but not a valuetrace activation cache (no "
            f"format={FORMAT!r} attribute). It was left untouched; point to another path or "
            "rerun with --overwrite to replace it."
        )
    return handle


def check_matches(
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


def open_complete(path: Path) -> h5py.File:
    """Open a complete cache read-only; a missing or half-written one is a clear error."""
    if not path.is_file():
        raise MissingStepError(f"no activation cache at {path}; run `valuetrace extract` first.")
    handle = open_cache(path, "r")
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
    with open_cache(Path(path), "r") as handle:
        check_matches(Path(path), handle, provenance, layers, d_model, n_examples)
        return bool(handle.attrs["complete"])


def read_activations(path: str | Path, layers: Sequence[int] | None = None) -> Activations:
    """Read a complete cache (all layers or the listed ones) into memory as float32."""
    path = Path(path)
    with open_complete(path) as handle:
        stored = [int(x) for x in handle.attrs["layers"]]
        chosen = list(stored if layers is None else layers)
        missing = [layer for layer in chosen if layer not in stored]
        if missing:
            raise CacheError(
                f"layers {missing} are not in {path} (it holds layers {stored}); read those, or "
                "extract the missing layers into a new cache."
            )
        if "checksum" in handle:
            verify_meta(path, handle)
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
            verify_layer_rows(path, handle, index, 0, block)
            blocks.append(block)
        acts = np.stack(blocks).astype(np.float32)
        return Activations(
            acts=acts,
            layers=chosen,
            ids=[s.decode() if isinstance(s, bytes) else s for s in handle["example_id"][()]],
            stored_labels=handle["label"][()].astype(np.int64) if "label" in handle else None,
            groups=[s.decode() if isinstance(s, bytes) else s for s in handle["group_id"][()]],
            attrs={k: plain(v) for k, v in handle.attrs.items()},
            scores=handle["score"][()].astype(np.float64) if "score" in handle else None,
        )


def plain(value: object) -> object:
    """HDF5 attribute values as JSON-friendly Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
