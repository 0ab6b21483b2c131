"""Shared builders for the training tests."""

from __future__ import annotations

from typing import Any

from valuetrace.training.stages import TrainSettings


def train_settings(**overrides: Any) -> TrainSettings:
    """Tiny-model stage settings (documents, full, 12 steps); keyword arguments override."""
    base: dict[str, Any] = {
        "format": "documents",
        "method": "full",
        "epochs": 1.0,
        "max_steps": 12,
        "learning_rate": 3e-3,
        "batch_size": 8,
        "grad_accum": 1,
        "max_length": 64,
        "warmup_ratio": 0.0,
        "weight_decay": 0.0,
        "seed": 0,
    }
    return TrainSettings(**{**base, **overrides})
