"""Step `train`: train the configured stages in order and record each checkpoint in the lineage
(`valuetrace.training.pipeline`)."""

from __future__ import annotations

from pathlib import Path

from valuetrace.config import RunConfig
from valuetrace.steps.common import run_lineage
from valuetrace.training.launch import check_accelerate_config
from valuetrace.training.lineage import Lineage
from valuetrace.training.pipeline import train_stages


def train(
    config: RunConfig,
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> Lineage:
    """Train the configured stages in order and record their lineage (`train_stages` says which
    stages are reused, retrained or refused).

    Raises:
        LineageError: a stage (or its checkpoint's weights) changed since it was trained and
            `overwrite` is false.
        DataError: a stage cannot be trained as configured.
        ConfigError: the accelerate launch config would save no weights; nothing is trained.
    """
    if config.accelerate_config is not None and any(s.data for s in config.stages):
        check_accelerate_config(Path(config.accelerate_config))  # before anything trains
    return train_stages(config, run_lineage(config), progress=progress, overwrite=overwrite)
