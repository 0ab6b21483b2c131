"""JSONL files, read and written one way for every layer: one JSON object a line, UTF-8.

Reading names the file and line of a bad line (not UTF-8, not JSON, not an object) in a
`DataError`; writing is byte-stable (same rows, same bytes), so seeded corpora can be compared
with `cmp`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from valuetrace.errors import DataError


def not_utf8(path: Path, err: UnicodeDecodeError, line: int | None = None) -> str:
    """The message for a file (or one of its lines) that is not UTF-8, with the fix."""
    where = f"{path} line {line}" if line is not None else f"{path} (byte {err.start})"
    return f"{where} is not UTF-8 text ({err.reason}); save the file as UTF-8."


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The JSON objects of a JSONL file with their 1-based line numbers (blank lines skipped).

    Raises:
        DataError: a line is not UTF-8, not valid JSON, or not a JSON object; the file and line
            are named.
    """
    rows = []
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(not_utf8(path, err, n)) from err
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{path} line {n} is not valid JSON ({err}); fix that line."
                ) from err
            if not isinstance(row, dict):
                raise DataError(
                    f"{path} line {n} is a JSON {type(row).__name__}, not an object; each line "
                    "must be one object with named fields."
                )
            rows.append((n, row))
    return rows


def write_jsonl(rows: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """Write rows as JSONL (UTF-8, non-ASCII kept as is, one object a line) to `path`, making its
    folder; the same rows give the same bytes. Returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_bytes(body.encode("utf-8"))
    return path
