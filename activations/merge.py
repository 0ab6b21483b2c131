"""Joining part caches (one per shard of a probe set) into one cache: rows copied in chunk-sized
blocks, each part checked against the target's request and rows, and the result read back."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from valuetrace.activations.checksums import verify_layer_rows
from valuetrace.activations.store import CHUNK_ROWS, open_complete, plain
from valuetrace.activations.writer import CacheWriter
from valuetrace.errors import CacheError


def _check_part(source: Path, part: h5py.File, writer: CacheWriter, offset: int) -> None:
    """Refuse to join a part cache made for another request or other rows."""
    wanted = writer.provenance()
    diffs = [k for k, v in wanted.items() if str(plain(part.attrs.get(k))) != str(v)]
    n, ids = part["hidden"].shape[1], part["example_id"][()]
    if diffs or part["hidden"].dtype != writer.dtype:
        raise CacheError(
            f"{source} was made for a different request ({diffs or 'dtype'} differ from "
            f"{writer.path}); delete it and rerun its extraction."
        )
    if offset + n > writer.n_rows or not np.array_equal(
        ids, writer.example_ids(offset, offset + n)
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
    with open_complete(Path(source)) as part:
        _check_part(Path(source), part, writer, offset)
        hidden = part["hidden"]
        end = offset + hidden.shape[1]
        begin = max(writer.rows_done, offset)
        while begin < end:
            stop = min((begin // CHUNK_ROWS + 1) * CHUNK_ROWS, end)
            block = hidden[:, begin - offset : stop - offset]
            for index in range(block.shape[0]):
                verify_layer_rows(Path(source), part, index, begin - offset, block[index])
            writer.write(begin, block)
            begin = stop
    return end


def verify_rows(source: Path, writer: CacheWriter, offset: int) -> None:
    """Check, reading back from disk, that `writer` holds exactly the rows of `source`."""
    with open_complete(Path(source)) as part:
        _check_part(Path(source), part, writer, offset)
        hidden = part["hidden"]
        for begin in range(0, hidden.shape[1], CHUNK_ROWS):
            stop = min(begin + CHUNK_ROWS, hidden.shape[1])
            written = writer.read(offset + begin, offset + stop)
            if not np.array_equal(written, hidden[:, begin:stop]):
                raise CacheError(
                    f"{writer.path} rows {offset + begin}..{offset + stop} differ from {source} "
                    "after the copy; the parts were kept. Delete the joined file and rerun."
                )
