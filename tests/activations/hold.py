"""A second process that holds an HDF5 file open, as a running extraction or reader does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLD = """
import sys, h5py
handle = h5py.File(sys.argv[1], sys.argv[2])
print("open", flush=True)
sys.stdin.read()  # hold the file (and its HDF5 lock) until the test closes stdin
handle.close()
"""


@contextmanager
def held_open(path: Path, mode: str) -> Iterator[None]:
    """Keep `path` open in mode `mode` in another process for the duration of the block."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        yield
    finally:
        proc.communicate(timeout=60)
