"""A run's result tables as Parquet files with a dataset card (a Hugging Face dataset), so
others can load the results without valuetrace; `valuetrace export` writes them.

Tables (one Parquet file each under `exports/dataset/`, written only when the run has them):

- `probes` (stage x probe set x layer x metric): dataset, stage, layer (int), metric, value;
- `comparisons` (stage pair x probe set x layer x measure, `verdict` included): dataset,
  stages, layer, measure, value (float; null on verdict rows), value_text (the verdict), lo,
  hi, floor;
- `behaviour` (stage x score): stage, score, value, lo, hi;
- `behaviour_items` (stage x eval item): stage, item_id, margin (nats/token, compassionate
  minus dismissive continuation);
- `anima_answers` (stage x question x sample): stage, question_id, sample, answer;
- `anima_verdicts` (stage x answer x dimension): stage, question_id, sample, dimension, score
  (the offline judge's P(yes), 0-1);
- `anima_scores` (stage x score): stage, score (`overall`, `dimension_normalized` or a
  dimension name), value, lo, hi (lo and hi null for `dimension_normalized`);
- `anima_projection` (stage): stage, dataset, layer, direction_of, n, r, lo, hi, null_abs_r
  (Pearson r of the answers' projections on the compassion direction against their judged
  score, `analysis.anima.projection`).

The CSV tables of the analysis are converted column by column: a column whose values are all
numbers (or empty) becomes float64 (empty: null; `layer` int64), a column of text stays text,
and a column mixing both (the verdict rows of `comparisons`) is split into `value` (numbers)
and `value_text` (text). `exports/dataset/README.md` is a dataset card whose `configs` name one
config per table, so `datasets.load_dataset("exports/dataset", "probes")` or
`datasets.load_dataset("parquet", data_files="exports/dataset/probes.parquet")` and
`pandas.read_parquet` all read it. `--to-hub REPO` copies the folder to REPO when REPO is a
local folder path, and otherwise uploads it as a dataset repo with `huggingface_hub`.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from valuetrace.analysis.anima.generate import AnswerSet
from valuetrace.analysis.anima.judge import JudgedAnswers
from valuetrace.analysis.anima.projection import AnimaProjection
from valuetrace.analysis.anima.scores import AnimaScores
from valuetrace.analysis.behaviour import BehaviourResult
from valuetrace.errors import ConfigError, MissingStepError
from valuetrace.paths import RunPaths

CSV_TABLES = ("probes", "comparisons", "behaviour")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def csv_table(path: Path) -> pa.Table:
    """A long-format CSV as a typed table (see the module doc for the column rules)."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns: dict[str, pa.Array] = {}
    for name in rows[0].keys() if rows else []:
        values = [r[name] for r in rows]
        numbers = [_number(v) if v != "" else None for v in values]
        texts = [v for v, n in zip(values, numbers, strict=True) if v != "" and n is None]
        if name == "layer":
            columns[name] = pa.array([int(v) for v in values], pa.int64())
        elif not texts:
            columns[name] = pa.array(numbers, pa.float64())
        elif len(texts) == len([v for v in values if v != ""]):
            columns[name] = pa.array(values, pa.string())
        else:
            columns[name] = pa.array(numbers, pa.float64())
            columns[f"{name}_text"] = pa.array(
                [
                    v if v != "" and n is None else None
                    for v, n in zip(values, numbers, strict=True)
                ],
                pa.string(),
            )
    return pa.table(columns)


def _records(paths: RunPaths, stages: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per-item rows of the behaviour and ANIMA records of `stages` that exist."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for stage in stages:
        if paths.behaviour(stage).is_file():
            b = BehaviourResult.load(paths.behaviour(stage))
            tables.setdefault("behaviour_items", []).extend(
                {"stage": stage, "item_id": i, "margin": m}
                for i, m in zip(b.item_ids, b.preference, strict=True)
            )
        if paths.anima_answers(stage).is_file():
            tables.setdefault("anima_answers", []).extend(
                {"stage": stage, **vars(a)}
                for a in AnswerSet.load(paths.anima_answers(stage)).answers
            )
        if paths.anima_judged(stage).is_file():
            tables.setdefault("anima_verdicts", []).extend(
                {"stage": stage, **vars(v)}
                for v in JudgedAnswers.load(paths.anima_judged(stage)).verdicts
            )
    if paths.anima_scores.is_file():
        scores = AnimaScores.load(paths.anima_scores)
        rows = tables.setdefault("anima_scores", [])
        for stage, s in scores.stages.items():
            rows.append({"stage": stage, "score": "overall", **vars(s.overall)})
            rows.append(
                {"stage": stage, "score": "dimension_normalized", "value": s.dimension_normalized}
            )
            rows.extend({"stage": stage, "score": d, **vars(v)} for d, v in s.dimensions.items())
    if paths.anima_projection.is_file():
        proj = AnimaProjection.load(paths.anima_projection)
        tables["anima_projection"] = [
            {
                "stage": stage,
                "dataset": proj.dataset,
                "layer": proj.layer,
                "direction_of": p.direction_of,
                "n": p.n,
                "r": p.r.value,
                "lo": p.r.lo,
                "hi": p.r.hi,
                "null_abs_r": p.null_abs_r,
            }
            for stage, p in proj.stages.items()
        ]
    return tables


def write_dataset(paths: RunPaths, stages: list[str]) -> Path:
    """Write every table the run in `paths` has (the records of `stages`) as Parquet plus a
    dataset card under `exports/dataset/`; returns the folder.

    Raises:
        MissingStepError: the run has no table yet (run the pipeline first).
    """
    out = paths.exports / "dataset"
    tables: dict[str, pa.Table] = {
        name: csv_table(paths.table(name)) for name in CSV_TABLES if paths.table(name).is_file()
    }
    tables.update({k: pa.Table.from_pylist(v) for k, v in _records(paths, stages).items() if v})
    if not tables:
        raise MissingStepError(
            f"{paths.root} holds no result table yet; run `valuetrace run` (or evaluate and "
            "analyze) first."
        )
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, out / f"{name}.parquet")
    configs = "".join(
        f"- config_name: {name}\n  data_files: {name}.parquet\n" for name in sorted(tables)
    )
    (out / "README.md").write_text(
        f"---\nconfigs:\n{configs}---\n\n# valuetrace results: {paths.root.name}\n\n"
        "Tables written by `valuetrace export`; the schema is documented in "
        "`valuetrace.analysis.export_dataset`.\n"
    )
    return out


def push_dataset(folder: Path, repo: str) -> str:
    """Copy `folder` to `repo` when it is a local path, else upload it as a hub dataset repo.

    Raises:
        ConfigError: the upload failed (no network or no write access); the cause is named.
    """
    target = Path(repo).expanduser()
    if repo.startswith((".", "/", "~")) or target.is_dir():
        shutil.copytree(folder, target, dirs_exist_ok=True)
        return str(target)
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo, repo_type="dataset", exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="dataset")
    except Exception as err:  # network, auth and hub errors all stop here with the cause
        raise ConfigError(
            f"could not push to the hub dataset {repo}: {err}. Log in (`hf auth login`) and "
            "check the network, or give a local folder path."
        ) from err
    return f"https://huggingface.co/datasets/{repo}"
