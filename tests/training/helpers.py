"""Shared builders for the training tests."""

from __future__ import annotations

from typing import Any

from valuetrace.config import StageConfig
from valuetrace.training.stages import StageRun

RUN = StageRun(seed=0)


def tiny_stage(**overrides: Any) -> StageConfig:
    """A tiny-model stage config (documents, full, 12 steps); keyword arguments override."""
    base: dict[str, Any] = {
        "name": "tiny",
        "max_steps": 12,
        "learning_rate": 3e-3,
        "batch_size": 8,
        "max_length": 64,
        "warmup_ratio": 0.0,
    }
    return StageConfig(**{**base, **overrides})
