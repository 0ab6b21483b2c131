"""Reading a data source into raw rows: a .jsonl/.json/.csv file, a hub dataset id, or a
`datasets.Dataset` (or `DatasetDict` split), with errors that name the file, line and fix.
`training.datasets.load_records` turns the rows into records."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, load_dataset

from valuetrace.errors import DataError
from valuetrace.jsonl import read_jsonl

Source = str | Path | Dataset | DatasetDict
Row = dict[str, Any]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FILE_SUFFIXES = (".jsonl", ".json", ".csv")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUTHY = {"1", "ON", "YES", "TRUE"}


def read_rows(source: Source, split: str) -> tuple[list[Row], str]:
    """Raw rows plus a human-readable name of where they came from (used in every error)."""
    if isinstance(source, DatasetDict):
        if split not in source:
            raise DataError(
                f"the given DatasetDict has no split {split!r} (splits: {', '.join(source)}); "
                "pass split= one of those"
            )
        source = source[split]
    if isinstance(source, Dataset):
        return list(source), "the given datasets.Dataset"
    if not isinstance(source, str | Path):
        raise DataError(
            f"source must be a path, a hub dataset id or a datasets.Dataset, "
            f"got {type(source).__name__}"
        )
    path = Path(source)
    if path.is_file():
        return _read_file(path), str(path)
    if path.exists():
        raise DataError(f"{path} is not a file; pass a {'/'.join(_FILE_SUFFIXES)} file")
    if isinstance(source, str) and _looks_like_hub_id(source):
        return _read_hub(source, split), f"hub dataset {source!r} (split {split!r})"
    raise DataError(
        f"{source}: no such file; pass an existing {'/'.join(_FILE_SUFFIXES)} path "
        "or a hub dataset id such as 'databricks/databricks-dolly-15k'"
    )


def _looks_like_hub_id(source: str) -> bool:
    """`owner/name` without a data-file suffix (a missing `x/y.jsonl` is a mistyped path)."""
    return bool(_HUB_ID.match(source)) and not source.lower().endswith(_FILE_SUFFIXES)


def _read_hub(dataset_id: str, split: str) -> list[Row]:
    """Load a hub dataset split, failing fast (no network retries) when offline mode is set."""
    fix = (
        "Pass a local .jsonl/.json/.csv path instead, or pre-download it where the hub is "
        f"reachable (datasets.load_dataset({dataset_id!r}, split={split!r}).to_json('x.jsonl')) "
        "and pass that file."
    )
    offline = [name for name in _OFFLINE_VARS if os.environ.get(name, "").upper() in _TRUTHY]
    if offline:
        raise DataError(
            f"could not load dataset {dataset_id!r} from the Hugging Face Hub: offline mode is "
            f"on ({', '.join(offline)} set). {fix}"
        )
    try:
        dataset = load_dataset(dataset_id, split=split)
    except Exception as exc:
        raise DataError(
            f"could not load dataset {dataset_id!r} (split {split!r}) from the Hugging Face "
            f"Hub: {type(exc).__name__}: {exc}. {fix}"
        ) from exc
    return list(dataset)


def _read_file(path: Path) -> list[Row]:
    """Dispatch on the file suffix; a non-UTF-8 file is reported rather than half-read."""
    readers: dict[str, Callable[[Path], list[Row]]] = {
        ".jsonl": _read_jsonl,
        ".json": _read_json,
        ".csv": _read_csv,
    }
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; "
            f"convert it to one of {', '.join(_FILE_SUFFIXES)}"
        )
    try:
        return reader(path)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc}); re-encode it as UTF-8") from exc


def _read_jsonl(path: Path) -> list[Row]:
    """One JSON object per non-blank line."""
    return [row for _, row in read_jsonl(path)]


def _read_json(path: Path) -> list[Row]:
    """A JSON list of objects, or an object whose "data" key holds that list."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}, line {exc.lineno} column {exc.colno}: malformed JSON ({exc.msg}); fix it"
        ) from exc
    if isinstance(content, dict) and isinstance(content.get("data"), list):
        content = content["data"]
    if not isinstance(content, list):
        raise DataError(
            f'{path}: expected a JSON list of objects or {{"data": [...]}}, '
            f"got {type(content).__name__}; reshape the file (or save it as .jsonl)"
        )
    return [_as_row(item, path, f"item {index}") for index, item in enumerate(content, start=1)]


def _read_csv(path: Path) -> list[Row]:
    """A CSV with a header row; values beyond the header are ignored, missing ones read as empty."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            return [{key: value for key, value in row.items() if key is not None} for row in reader]
        except csv.Error as exc:
            raise DataError(
                f"{path}, line {reader.line_num}: malformed CSV ({exc}); fix that line"
            ) from exc


def _as_row(item: object, path: Path, where: str) -> Row:
    """Every JSON row must be an object (column name → value)."""
    if not isinstance(item, dict):
        raise DataError(
            f"{path}, {where}: expected a JSON object, got {type(item).__name__}; "
            "each row must map column names to values"
        )
    return item
