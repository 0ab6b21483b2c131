"""The probe machinery on the real speciesism pairs, with bag-of-words features as one 'layer'."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from valuetrace.config import ProbingConfig
from valuetrace.probing import probe_layers

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PAIRS = DATA / "speciesism" / "openpaws_speciesism_bias.csv"


def test_speciesism_pairs_probe_runs_and_respects_pairs() -> None:
    if not PAIRS.is_file():
        pytest.skip(f"real data file {PAIRS} is absent (the shared data folder beside the repo)")
    with PAIRS.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["paired_id"]]
    texts = [r["text"] for r in rows]
    labels = np.array([r["speciesist_label"] == "non_speciesist" for r in rows], dtype=np.int64)
    groups = np.array([min(r["id"], r["paired_id"]) for r in rows])
    features = HashingVectorizer(n_features=512, alternate_sign=False).transform(texts)
    acts = features.toarray().astype(np.float32)[None]  # one "layer"

    results = probe_layers(acts, labels, groups, ProbingConfig(n_bootstrap=100))

    assert len(rows) == 1936 and labels.sum() == 968
    for g in np.unique(groups):
        members = results.folds[groups == g]
        assert len(members) == 2 and members[0] == members[1]
    assert results.accuracy[0] > 0.75 and results.auroc[0] > 0.8
    assert abs(results.control_accuracy[0] - 0.5) < 0.1


EMPATHY = DATA / "empathy" / "empathic_reactions_messages.csv"


def test_empathy_essays_probe_every_layer_of_a_tiny_model(tiny_model, tiny_tokenizer) -> None:
    """High- vs low-empathy essays through a real (tiny) forward pass, grouped by respondent."""
    if not EMPATHY.is_file():
        pytest.skip(f"real data file {EMPATHY} is absent (the shared data folder beside the repo)")
    from valuetrace.activations.extract import pooled_hidden_states
    from valuetrace.activations.pooling import collate, encode

    with EMPATHY.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["essay"].strip()][:240]
    labels = np.array([int(r["empathy_bin"]) for r in rows])
    groups = np.array([r["response_id"] for r in rows])
    encoded = encode(tiny_tokenizer, [""] * len(rows), [r["essay"] for r in rows], 96)
    pad, bos = tiny_tokenizer.pad_token_id, tiny_tokenizer.bos_token_id
    acts = np.concatenate(
        [
            pooled_hidden_states(
                tiny_model, collate(encoded[i : i + 48], pad, bos, "mean"), [0, 1, 2]
            ).numpy()
            for i in range(0, len(rows), 48)
        ],
        axis=1,
    )
    results = probe_layers(acts, labels, groups, ProbingConfig(n_folds=4, n_bootstrap=100))
    assert results.accuracy.shape == (3,) and np.all(np.isfinite(results.auroc))
    for g in np.unique(groups):
        assert len(set(results.folds[groups == g])) == 1  # a respondent's essays stay together
