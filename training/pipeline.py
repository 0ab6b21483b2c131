"""The configured stages trained in order, each recorded in the lineage: an unchanged stage is
reused, a changed or damaged one retrained (with `overwrite`) after every file derived from it
is removed, and stages no longer configured go."""

from __future__ import annotations

import gc
import logging

from valuetrace.config import RunConfig
from valuetrace.errors import LineageError
from valuetrace.paths import RunPaths, remove_inside, trainer_dir
from valuetrace.training.lineage import Lineage, changed_inputs
from valuetrace.training.runner import stage_records, train_one
from valuetrace.training.stage_records import (
    checkpoint_damage,
    existing_checkpoint,
    saved_points,
    wanted_record,
)
from valuetrace.training.tokenizer import run_tokenizer

log = logging.getLogger(__name__)


def remove_outputs(paths: RunPaths, stage: str) -> None:
    """Delete a stage's checkpoint (and half-finished Trainer checkpoints), every file derived
    from it, and the cross-stage analysis and report, so none outlives the stage it describes."""
    checkpoint = paths.checkpoint(stage)
    for path in [
        checkpoint,
        trainer_dir(checkpoint),
        *paths.stage_outputs(stage),
        *paths.cross_stage_outputs,
    ]:
        if remove_inside(path, paths.root):
            log.info("removed %s (stale: stage %s changed)", path, stage)


def train_stages(
    config: RunConfig, lineage: Lineage, *, progress: bool = True, overwrite: bool = False
) -> Lineage:
    """Train the configured stages in order into the run folder and record them in `lineage`
    (saved after each stage).

    A recorded stage whose fingerprint (settings, data, parent) still matches is reused. One
    that changed is retrained with `overwrite`, after its checkpoint and every file derived from
    it or from any stage are removed; its descendants follow, as their parent changed. Without
    `overwrite` a changed stage is refused, naming what changed.

    A stage trained here whose checkpoint files went missing is retrained; one whose weight
    files changed (hash mismatch with the lineage) is retrained with `overwrite`. When the
    retrained weights differ from those recorded, its descendants are stale and follow as
    changed stages do.

    Raises:
        LineageError: a stage (or its checkpoint's weights) changed since it was trained and
            `overwrite` is false.
        DataError: a stage cannot be trained as configured.
    """
    paths = config.paths
    _drop_unconfigured(config, lineage, overwrite)
    tokenizer = run_tokenizer(config, overwrite)
    changed: set[str] = set()
    for stage in config.stages:
        records = stage_records(config, stage) if stage.data is not None else None
        parent = lineage.get(stage.parent) if stage.parent else None
        wanted = wanted_record(config, stage, records, tokenizer, parent)
        old = lineage.find(stage.name)
        parent_changed = stage.parent in changed
        repairing = False
        if old is not None and old.fingerprint == wanted.fingerprint and not parent_changed:
            damage = checkpoint_damage(config, stage, old)
            if damage is None:
                log.info("stage %s is up to date: %s", stage.name, old.checkpoint)
                continue
            if damage.endswith("changed") and not overwrite:  # missing files: nothing to lose
                raise LineageError(
                    f"the checkpoint of stage '{stage.name}' ({paths.checkpoint(stage.name)}) "
                    f"{damage} since it was trained; it was left as it is. Pass --overwrite to "
                    "retrain it (stages downstream follow if its new weights differ)."
                )
            log.warning("stage %s: its checkpoint %s; retraining it", stage.name, damage)
            remove_outputs(paths, stage.name)
            _drop_points(config, lineage, stage.name)
            repairing = True
        elif old is not None:
            changes = changed_inputs(old, wanted, parent_changed=parent_changed)
            if not overwrite:
                raise LineageError(
                    f"stage '{stage.name}' changed since it was trained ({'; '.join(changes)}); "
                    "it and its outputs were left as they are. Pass --overwrite to retrain it "
                    "(and the stages downstream of it), or choose another --run-dir."
                )
            log.warning("stage %s changed (%s): retraining it", stage.name, "; ".join(changes))
            remove_outputs(paths, stage.name)
            _drop_points(config, lineage, stage.name)
            changed.add(stage.name)
        if stage.data is None:
            lineage.put(existing_checkpoint(config, stage, wanted))
        else:
            assert records is not None
            trained = train_one(config, stage, lineage, tokenizer, records, wanted, progress)
            record = trained[-1]  # the stage itself, after its save_at points
            if repairing and old is not None and record.weights_hash != old.weights_hash:
                changed.add(stage.name)  # its children were trained from other weights
            for point in trained:
                lineage.put(point)
        lineage.save(paths.lineage)
        gc.collect()  # the finished Trainer holds its model and optimizer in reference cycles
    return lineage


def _drop_points(config: RunConfig, lineage: Lineage, stage: str) -> None:
    """Remove the `save_at` checkpoints of a stage about to be retrained, and their outputs."""
    for name in saved_points(config, lineage, stage):
        remove_outputs(config.paths, name)
        lineage.remove(name)


def _drop_unconfigured(config: RunConfig, lineage: Lineage, overwrite: bool) -> None:
    """Stages recorded in the lineage but no longer in the config go, with their outputs."""
    configured = {s.name for s in config.stages}
    configured |= {n for s in config.stages for n in saved_points(config, lineage, s.name)}
    gone = [name for name in lineage.names() if name not in configured]
    if not gone:
        return
    if not overwrite:
        raise LineageError(
            f"the run folder holds stages the config no longer lists ({gone}); pass "
            "--overwrite to remove them and their outputs, or choose another --run-dir."
        )
    for name in gone:
        log.warning("stage %s is no longer configured: removing it", name)
        remove_outputs(config.paths, name)
        lineage.remove(name)
    lineage.save(config.paths.lineage)
