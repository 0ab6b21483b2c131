"""Tests for the real-data corpora: schemas, counts, held-out splits, determinism, config."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.valuetrace.corpora.test_demo_data import SCHEMAS  # the file set both writers produce
from valuetrace.activations.examples import load_labelled
from valuetrace.config import load_config
from valuetrace.corpora.demo_data import (
    HELDOUT_FILES,
    TRAIN_FILES,
    DemoDataPaths,
    overlapping_spans,
)
from valuetrace.corpora.real_data import SPECIESISM, RealDataSizes, write_real_data
from valuetrace.errors import ValuetraceError
from valuetrace.steps.prepare import prepare
from valuetrace.training.datasets import PromptResponse, load_records

CONFIG = Path(__file__).resolve().parents[3] / "valuetrace" / "configs" / "real_data.yaml"
SIZES = RealDataSizes()


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _texts(rows: list[dict[str, Any]]) -> list[str]:
    skip = {"id", "pair_id", "category"}
    return [v for r in rows for k, v in r.items() if isinstance(v, str) and v and k not in skip]


@pytest.fixture(scope="module")
def written(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoDataPaths:
    """The real-data corpora written once with seed 0 and the default sizes."""
    return write_real_data(shared_data, tmp_path_factory.mktemp("real") / "data", seed=0)


@pytest.fixture(scope="module")
def corpora(written: DemoDataPaths) -> dict[str, list[dict[str, Any]]]:
    """Every written file read back as rows."""
    return {name: _rows(getattr(written, name)) for name in SCHEMAS}


def test_schemas_and_counts(corpora: dict[str, list[dict[str, Any]]]) -> None:
    """Every file has the demo's schema, and the caps and split sizes hold."""
    for name, rows in corpora.items():
        assert rows, name
        assert all(set(r) == SCHEMAS[name] for r in rows), name
        optional = {"prompt", "context", "input"}
        assert all(all(str(v).strip() for k, v in r.items() if k not in optional) for r in rows)
    assert 1000 < len(corpora["general"]) <= SIZES.general
    assert 500 < len(corpora["compassion_docs"]) <= SIZES.compassion
    assert len(corpora["helpfulness"]) == SIZES.helpfulness
    assert len(corpora["helpfulness_eval"]) == SIZES.helpfulness_eval
    assert len(corpora["coding"]) == SIZES.coding
    assert all(str(r["output"]).strip() for r in corpora["coding"])
    assert len(corpora["probe_pairs"]) == 2 * SIZES.probe_pairs
    assert len(corpora["control_pairs"]) == 2 * SIZES.control_pairs
    assert len(corpora["behaviour_eval"]) == SIZES.behaviour_pairs
    for name in ("probe_pairs", "control_pairs"):
        rows = corpora[name]
        assert Counter(r["label"] for r in rows) == {0: len(rows) // 2, 1: len(rows) // 2}
        assert all(r["prompt"] == "" for r in rows)
        assert set(Counter(r["pair_id"] for r in rows).values()) == {2}
        assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["prompt"] == "" for r in corpora["behaviour_eval"])
    help_text = {r["instruction"] for r in corpora["helpfulness"]}
    assert not help_text & {r["instruction"] for r in corpora["helpfulness_eval"]}


def test_pairs_split_three_ways(
    corpora: dict[str, list[dict[str, Any]]], shared_data: Path
) -> None:
    """No speciesism pair is in two of: mid-training text, probe pairs, behaviour eval."""
    with (shared_data / SPECIESISM).open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    pair_of = {
        r["text"]: "|".join(sorted((r["id"], r["paired_id"])))
        for r in rows
        if r["speciesist_label"] != "neutral"
    }
    probe = {r["pair_id"] for r in corpora["probe_pairs"]}
    beh = {pair_of[r["compassionate"]] for r in corpora["behaviour_eval"]}
    assert beh == {pair_of[r["dismissive"]] for r in corpora["behaviour_eval"]}
    assert {pair_of[r["response"]] for r in corpora["probe_pairs"]} == probe
    docs = " ".join(r["text"] for r in corpora["compassion_docs"])
    train = {pid for text, pid in pair_of.items() if text in docs}
    assert len(train) > 400
    assert not probe & beh
    assert not probe & train
    assert not beh & train
    labels = {r["response"]: r["label"] for r in corpora["probe_pairs"]}
    kinds = {r["text"]: r["speciesist_label"] for r in rows}
    assert all((kinds[t] == "non_speciesist") == (lab == 1) for t, lab in labels.items())
    assert all(kinds[r["compassionate"]] == "non_speciesist" for r in corpora["behaviour_eval"])


def test_heldout_text_not_in_training(corpora: dict[str, list[dict[str, Any]]]) -> None:
    """No held-out sentence, nor any 8-word span of one, occurs in any training file."""
    train = [t for name in TRAIN_FILES for t in _texts(corpora[name])]
    held = [t for name in HELDOUT_FILES for t in _texts(corpora[name])]
    assert overlapping_spans(train, held) == []
    docs = " ".join(r["text"] for r in corpora["compassion_docs"])
    assert not [t for t in held if t in docs]


def test_prepare_writes_same_bytes_and_seed_changes_them(
    written: DemoDataPaths, shared_data: Path, tmp_path: Path
) -> None:
    """The pipeline's prepare step writes the same bytes for the same seed; another seed differs."""
    config = load_config(CONFIG, run_dir=str(tmp_path / "run"))
    config.real_data_dir = str(shared_data)
    prepare(config)
    for name in [*SCHEMAS, "DATA_CARD.md"]:
        file = f"{name}.jsonl" if name in SCHEMAS else name
        assert (config.paths.data / file).read_bytes() == (written.root / file).read_bytes(), name
    other = write_real_data(shared_data, tmp_path / "seed1", seed=1)
    assert other.probe_pairs.read_bytes() != written.probe_pairs.read_bytes()
    assert other.general.read_bytes() != written.general.read_bytes()


def test_loaders_read_the_files(written: DemoDataPaths) -> None:
    """load_labelled reads the probe and control sets; load_records the SFT files."""
    for path in (written.probe_pairs, written.control_pairs):
        examples = load_labelled(path)
        assert len(examples) == 600
        assert set(Counter(examples.groups).values()) == {2}
        assert examples.labels.sum() == 300
    for path, schema, n in (
        (written.helpfulness, "dolly", SIZES.helpfulness),
        (written.helpfulness_eval, "dolly", SIZES.helpfulness_eval),
        (written.coding, "alpaca", SIZES.coding),
    ):
        records = load_records(path, schema)
        assert len(records) == n
        assert all(isinstance(r, PromptResponse) for r in records)
    assert len(load_records(written.general, "documents")) > 1000
    assert len(load_records(written.compassion_docs, "documents")) > 500


def test_config_validates(shared_data: Path) -> None:
    """The real-data config loads, points at the shared folder and uses the written files."""
    config = load_config(CONFIG)
    assert config.real_data_dir is not None
    assert Path(config.real_data_dir).resolve() == shared_data.resolve()
    assert not config.demo_data
    assert [s.name for s in config.stages] == ["base", "midtrain", "sft_help", "sft_code"]
    schemas = {s.name: s.data.schema for s in config.stages if s.data is not None}
    assert schemas == {
        "base": "documents",
        "midtrain": "documents",
        "sft_help": "dolly",
        "sft_code": "alpaca",
    }
    assert [p.name for p in config.probes] == ["compassion", "ethics_cm"]


def test_missing_folder_and_file(shared_data: Path, tmp_path: Path) -> None:
    """A missing shared folder or file is an error that names it and the config fix."""
    with pytest.raises(ValuetraceError, match=r"real_data_dir") as err:
        write_real_data(tmp_path / "absent", tmp_path / "out")
    assert "../shared/data" in str(err.value)
    partial = tmp_path / "partial"
    for sub in shared_data.iterdir():
        if sub.is_dir() and sub.name != "dolly":
            (partial / sub.name).mkdir(parents=True)
            for f in sub.iterdir():
                (partial / sub.name / f.name).symlink_to(f)
    with pytest.raises(ValuetraceError, match=r"dolly_open_qa\.jsonl.*real_data_dir"):
        write_real_data(partial, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_sizes(shared_data: Path, tmp_path: Path) -> None:
    """Sizes that leave no pairs for training, or are not positive, are refused."""
    with pytest.raises(ValuetraceError, match="probe"):
        write_real_data(shared_data, tmp_path, sizes=RealDataSizes(probe_pairs=900))
    with pytest.raises(ValuetraceError, match="general"):
        RealDataSizes(general=0)
