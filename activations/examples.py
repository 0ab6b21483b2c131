"""Labelled probe datasets: prompt/response (or plain text) examples with 0/1 labels and groups.

A probe set is a JSONL or CSV file with columns `id`, `response` (or `text`), `label` (0/1, or
the strings named in `positive`/`negative`), and optionally `prompt` and `pair_id`/`group`.
Both members of a contrastive pair share a `pair_id`, so CV folds and bootstraps keep them
together.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from valuetrace.errors import DataError


@dataclass(frozen=True)
class LabelledExamples:
    """Examples to extract and probe; `prompts` may be empty strings for plain texts."""

    ids: list[str]
    prompts: list[str]
    responses: list[str]
    labels: np.ndarray
    groups: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def content_hash(self) -> str:
        """sha256 of every field, the dataset hash in the cache's provenance."""
        digest = hashlib.sha256()
        for row in zip(
            self.ids, self.prompts, self.responses, self.labels.tolist(), self.groups, strict=True
        ):
            digest.update(json.dumps(row).encode())
        return digest.hexdigest()


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(
            f"probe set {path} does not exist; check the path (the probe set's `source` in the "
            "config, or --examples)."
        )
    if path.suffix == ".csv":
        with path.open(newline="") as fh:
            return list(csv.DictReader(fh))
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{n} is not valid JSON ({err}); fix that line.") from err
    return rows


def load_labelled(path: str | Path) -> LabelledExamples:
    """Read and validate a probe set: non-empty texts, 0/1 labels, both classes present."""
    path = Path(path)
    rows = _rows(path)
    if not rows:
        raise DataError(f"probe set {path} is empty; it needs examples of both classes.")
    text_key = "response" if "response" in rows[0] else "text"
    missing = [k for k in ("id", text_key, "label") if k not in rows[0]]
    if missing:
        raise DataError(
            f"probe set {path} lacks column(s) {missing}; found {sorted(rows[0])}. Expected "
            "id, response (or text), label, and optionally prompt and pair_id."
        )
    labels = []
    for n, row in enumerate(rows, start=1):
        if not str(row[text_key]).strip():
            raise DataError(f"{path} row {n}: empty {text_key}; drop or fix that row.")
        if str(row["label"]) not in ("0", "1"):
            raise DataError(
                f"{path} row {n}: label {row['label']!r} is not 0 or 1 (1 = concept present)."
            )
        labels.append(int(row["label"]))
    label_array = np.asarray(labels, dtype=np.int64)
    if len(set(labels)) < 2:
        raise DataError(
            f"probe set {path} has only label {labels[0]}; a probe needs both classes (0 and 1)."
        )
    group_key = next((k for k in ("pair_id", "group", "group_id") if k in rows[0]), "id")
    return LabelledExamples(
        ids=[str(r["id"]) for r in rows],
        prompts=[str(r.get("prompt") or "") for r in rows],
        responses=[str(r[text_key]) for r in rows],
        labels=label_array,
        groups=[str(r[group_key]) for r in rows],
    )
