"""Example sets to extract: prompt/response (or plain text) rows, optionally labelled or scored.

An example set is a JSONL or CSV file with columns `id` and `response` (or `text`), and optionally
`prompt`, `pair_id`/`group`, `label` (0/1, 1 = concept present) and `score` (a finite number,
e.g. a graded answer). Extraction needs neither label nor score; a probe set (`load_labelled`)
needs 0/1 labels of both classes. Both members of a contrastive pair share a `pair_id`, so CV
folds and bootstraps keep them together.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from valuetrace.errors import DataError
from valuetrace.jsonl import not_utf8, read_jsonl
from valuetrace.records import short_repr
from valuetrace.stats import check_labels


@dataclass(frozen=True)
class LabelledExamples:
    """Examples to extract (and probe); `prompts` may be empty strings for plain texts.

    `labels` (0/1, int64 [n]) and `scores` (float64 [n]) are None for a set that has none.
    """

    ids: list[str]
    prompts: list[str]
    responses: list[str]
    labels: np.ndarray | None
    groups: list[str]
    scores: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def content_hash(self) -> str:
        """sha256 of every field, the dataset hash in the cache's provenance.

        A labelled set without scores hashes as it did before scores existed.
        """
        n = len(self.ids)
        labels = [None] * n if self.labels is None else self.labels.tolist()
        digest = hashlib.sha256()
        columns = [self.ids, self.prompts, self.responses, labels, self.groups]
        if self.scores is not None:
            columns.append(self.scores.tolist())
        for row in zip(*columns, strict=True):
            digest.update(json.dumps(row).encode())
        return digest.hexdigest()

    def require_labels(self, what: str) -> np.ndarray:
        """The 0/1 labels of both classes, or a DataError saying that `what` needs them."""
        if self.labels is None:
            raise DataError(
                f"{what} needs 0/1 labels, but this example set has no 'label' column; add one "
                "(1 = concept present) or use the set for extraction only."
            )
        try:
            return check_labels(self.labels, len(self))
        except DataError as err:  # e.g. one class only: say which set
            raise DataError(f"{what}: {err}") from err


def _rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """The rows of a JSONL or CSV example set, each with its line number in the file."""
    if not path.is_file():
        raise DataError(
            f"probe set {path} does not exist; check the path (the probe set's `source` in the "
            "config, or --examples)."
        )
    if path.suffix != ".csv":
        return read_jsonl(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            return [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError as err:
        raise DataError(not_utf8(path, err)) from err


def load_labelled(path: str | Path) -> LabelledExamples:
    """Read a probe set: `load_examples`, plus 0/1 labels of both classes (else DataError)."""
    examples = load_examples(path)
    examples.require_labels(f"probe set {path}")
    return examples


def load_examples(path: str | Path) -> LabelledExamples:
    """Read and validate an example set: non-empty texts; labels 0/1 and scores finite if given.

    A `label` or `score` column must be filled on every row (a blank one is a DataError naming
    the row), so a set is either labelled (scored) throughout or not at all. Raises DataError on a
    missing file, bad JSON, a missing id/text column, or a bad value.
    """
    path = Path(path)
    numbered = _rows(path)
    if not numbered:
        raise DataError(f"example set {path} is empty; it needs at least one example.")
    lines, rows = [n for n, _ in numbered], [row for _, row in numbered]
    text_key = "response" if "response" in rows[0] else "text"
    group_key = next((k for k in ("pair_id", "group", "group_id") if k in rows[0]), "id")
    needed = [k for k in ("id", text_key, group_key, "label", "score") if k in rows[0]]
    for n, row in zip(lines, rows, strict=True):
        missing = [k for k in ("id", text_key) if k not in rows[0]] or [
            k for k in needed if k not in row
        ]
        if missing:
            raise DataError(
                f"{path} line {n}: the example lacks field(s) {missing}; found {sorted(row)}. "
                "Every example needs id and response (or text); prompt, pair_id, label (0/1) "
                "and score are optional but, if used, on every line."
            )
        if not str(row.get(text_key) or "").strip():
            raise DataError(f"{path} line {n}: empty {text_key}; drop or fix that line.")
    return LabelledExamples(
        ids=[str(r["id"]) for r in rows],
        prompts=[str(r.get("prompt") or "") for r in rows],
        responses=[str(r[text_key]) for r in rows],
        labels=_column(path, numbered, "label", _label) if "label" in rows[0] else None,
        groups=[str(r[group_key]) for r in rows],
        scores=_column(path, numbered, "score", _score) if "score" in rows[0] else None,
    )


def _label(value: object) -> int | None:
    """0 or 1 from a JSON number or CSV string, else None."""
    text = str(value)
    return int(text) if text in ("0", "1") else None


def _score(value: object) -> float | None:
    """A finite float from a JSON number or CSV string, else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _column(
    path: Path,
    rows: list[tuple[int, dict[str, str]]],
    key: str,
    parse: Callable[[object], float | None],
) -> np.ndarray:
    """One checked value per row of column `key`; the first bad row is a DataError naming its
    line."""
    values = []
    for n, row in rows:
        value = parse(row.get(key)) if row.get(key) not in (None, "") else None
        if value is None:
            want = "0 or 1 (1 = concept present)" if key == "label" else "a finite number"
            raise DataError(
                f"{path} line {n}: {key} {short_repr(row.get(key))} is not {want}; fix that "
                f"line, or drop the {key} column to extract without it."
            )
        values.append(value)
    return np.asarray(values, dtype=np.int64 if key == "label" else np.float64)
