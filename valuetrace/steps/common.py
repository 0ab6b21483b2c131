"""What several steps share: the run's lineage, a stage's model and tokenizer, the check that a
derived file was made from the current version of its stage, and a run's known answer (read by
`trajectory`, `calibrate` and `report`)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from valuetrace.analysis.calibration import KnownAnswer, arm_calibration
from valuetrace.analysis.trajectory import TrajectoryRecord
from valuetrace.config import RunConfig
from valuetrace.config_sections import ProbeSet
from valuetrace.errors import CacheError, ConfigError
from valuetrace.models import load_model, load_tokenizer
from valuetrace.training.lineage import Lineage, StageRecord


def run_lineage(config: RunConfig) -> Lineage:
    """The run's `lineage.json`, or an empty lineage before any stage is trained."""
    path = config.paths.lineage
    return Lineage.load(path) if path.is_file() else Lineage()


def stage_model(config: RunConfig, record: StageRecord):
    """The stage's model (its checkpoint, with its adapter if any) in the config's dtype, on the
    GPU when there is one."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_model(
        record.checkpoint,
        adapter=record.adapter,
        revision=record.revision,
        dtype=config.model.dtype,
        device=device,
    )


def stage_tokenizer(record: StageRecord) -> PreTrainedTokenizerBase:
    """The stage's tokenizer (saved beside its adapter when it has one, else its checkpoint's)."""
    source = record.adapter if record.adapter else record.checkpoint
    return load_tokenizer(source, record.revision)


def require_current(record: StageRecord, found: object, path: Path, step: str) -> None:
    """Refuse a derived file (cache, probes) made from an earlier version of its stage: the stage
    fingerprint it recorded must be the lineage's. Files from before fingerprints (none
    recorded) pass, as do stages recorded by hand without one.

    Raises:
        CacheError: `found` differs from the stage's fingerprint; rerunning `step` fixes it.
    """
    if record.fingerprint and found and str(found) != record.fingerprint:
        raise CacheError(
            f"{path} was made from an earlier version of stage '{record.name}' (its settings, "
            f"data or parent changed since); run `valuetrace {step} --overwrite` to redo it."
        )


def chosen_probe_sets(config: RunConfig, names: Collection[str] | None) -> list[ProbeSet]:
    """The config's probe sets (all when `names` is None, else those named, in config order):
    `calibrate` runs its steps on the primary set only, the one its table reads.

    Raises:
        ConfigError: a name is not one of the config's probe sets.
    """
    if names is None:
        return list(config.probes)
    unknown = sorted(set(names) - {p.name for p in config.probes})
    if unknown:
        raise ConfigError(
            f"probe sets {unknown} are not in the config's probes "
            f"({[p.name for p in config.probes]}); name one of those."
        )
    return [p for p in config.probes if p.name in names]


def known_answer(config: RunConfig, record: TrajectoryRecord) -> KnownAnswer | None:
    """The known answer over the primary probe set, when the config names both arms
    (`analysis.counter_arm`, `neutral_arm`), with its probe set, concept and stated cause.

    Raises:
        MissingStepError: an arm has no trajectory over the primary probe set.
        DataError: the arms were saved at other steps or compared over other layers.
    """
    counter, neutral = config.analysis.counter_arm, config.analysis.neutral_arm
    if counter is None or neutral is None:
        return None
    primary = config.probes[0]
    return arm_calibration(
        record,
        primary.name,
        counter,
        neutral,
        config.analysis.alpha,
        concept=primary.concept,
        cause=config.analysis.known_cause,
    )
