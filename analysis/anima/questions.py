"""The ANIMA questions and dimensions, loaded and checked before any model is loaded.

Files (the public AHB 2.x set; `../shared/data/anima/SOURCE_README.md` gives its source):

- `dimensions.jsonl`: one dimension per line: `dimension`, `guiding_question`, `scoring`,
  `observable_indicators`, optional `default_weighting` (1.0 when absent);
- `questions.jsonl`: one question per line: `id`, `question`, `tags` (dimension names),
  `variables` (null, or lines `name:value1,value2` that fill `{{name}}` placeholders in the
  tagged dimensions' guiding questions), `language` (null for the original English questions).

Rules follow the benchmark's own Inspect implementation (`inspect_evals.anima`, 0.26.0):

- a question's language `null` is "English", so `languages: [English]` keeps the original
  English questions and those written in English;
- a guiding question is asked once per combination of its placeholders' values (the
  cartesian product), and a placeholder the question gives no variable for is filled with its
  own name (`{{animal}}s` reads "animals", the general case);
- a question with a blank tag is skipped (the benchmark drops it), with a warning.

Refused, each with a `DataError` naming the line and the fix: a file that is missing or not
JSONL, a line without a required field, a tag naming no known dimension, a variable without a
value (`animal:` or a line without `:`), and a language filter that keeps no question.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valuetrace.config import RunConfig, resolve_data_path
from valuetrace.errors import ConfigError, DataError
from valuetrace.jsonl import read_jsonl

log = logging.getLogger(__name__)

PLACEHOLDER = re.compile(r"\{\{([^}]+)\}\}")
ENGLISH = "English"
DIMENSION_FIELDS = ("dimension", "guiding_question", "scoring", "observable_indicators")
QUESTION_FIELDS = ("id", "question", "tags", "variables", "language")


@dataclass(frozen=True)
class Dimension:
    """One ANIMA dimension: the question a grader answers about an answer, and its weight."""

    name: str
    guiding_question: str
    scoring: str
    indicators: str
    weight: float = 1.0

    @property
    def placeholders(self) -> list[str]:
        """The `{{name}}` placeholders of the guiding question, in order, each once."""
        return list(dict.fromkeys(PLACEHOLDER.findall(self.guiding_question)))


@dataclass(frozen=True)
class Question:
    """One ANIMA question with the dimensions it is tagged with and its variables."""

    id: str
    question: str
    tags: list[str]
    variables: dict[str, list[str]]
    language: str

    def guiding_questions(self, dimensions: dict[str, Dimension]) -> dict[str, list[str]]:
        """Each tagged dimension's guiding question, filled once per combination of values.

        A placeholder the question has no variable for is filled with its own name, as the
        benchmark does (`inspect_evals.anima.scorer.get_variable_sets`).
        """
        filled: dict[str, list[str]] = {}
        for tag in self.tags:
            dim = dimensions[tag]
            choices = [
                [(name, value) for value in self.variables.get(name, [name])]
                for name in dim.placeholders
            ]
            texts = []
            for combo in itertools.product(*choices):
                text = dim.guiding_question
                for name, value in combo:
                    text = text.replace("{{" + name + "}}", value)
                texts.append(text)
            filled[tag] = texts
        return filled


def _jsonl(path: Path, what: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-blank line of a JSONL file."""
    if not path.is_file():
        raise DataError(
            f"ANIMA {what} file {path} does not exist; point anima.source at a folder holding "
            "questions.jsonl and dimensions.jsonl (e.g. ../shared/data/anima)."
        )
    rows = read_jsonl(path)
    if not rows:
        raise DataError(f"ANIMA {what} file {path} is empty; it needs one JSON object per line.")
    return rows


def _require(row: dict[str, Any], fields: Sequence[str], where: str) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise DataError(
            f"{where} lacks the field(s) {missing}; every line needs {list(fields)} (see the "
            "ANIMA data's README)."
        )


def load_dimensions(path: str | Path) -> dict[str, Dimension]:
    """The dimensions of `dimensions.jsonl`, by name, in file order.

    Raises:
        DataError: the file is missing or not JSONL, a line lacks a field, a name repeats,
            or a weight is not a non-negative number.
    """
    path = Path(path)
    dims: dict[str, Dimension] = {}
    for number, row in _jsonl(path, "dimensions"):
        where = f"{path}:{number}"
        _require(row, DIMENSION_FIELDS, where)
        name = str(row["dimension"]).strip()
        if not name or name in dims:
            raise DataError(f"{where}: dimension name {name!r} is blank or repeated; fix it.")
        weight = row.get("default_weighting", 1.0)
        if not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0:
            raise DataError(f"{where}: default_weighting {weight!r} must be a number >= 0.")
        dims[name] = Dimension(
            name=name,
            guiding_question=str(row["guiding_question"]),
            scoring=str(row["scoring"]),
            indicators=str(row["observable_indicators"] or ""),
            weight=float(weight),
        )
    return dims


def parse_variables(text: str | None, where: str) -> dict[str, list[str]]:
    """Variables written as lines `name:value1,value2` (the benchmark's format), by name.

    Raises:
        DataError: a line has no `name:` part or no value.
    """
    variables: dict[str, list[str]] = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        name, sep, values = line.partition(":")
        parsed = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name.strip() or not parsed:
            raise DataError(
                f"{where}: variable {line.strip()!r} has no value; write it as "
                "'name:value1,value2' (e.g. 'animal:crickets') or drop it."
            )
        variables.setdefault(name.strip(), []).extend(parsed)
    return variables


def load_questions(
    path: str | Path,
    dimensions: dict[str, Dimension],
    *,
    languages: Sequence[str] | None = (ENGLISH,),
    limit: int | None = None,
) -> list[Question]:
    """The questions of `questions.jsonl` in `languages` (None: all), the first `limit` kept.

    Every question is checked (fields, tags, variables) before the language filter, so a bad
    file fails the same way whatever the filter.

    Raises:
        DataError: the file is missing or not JSONL, a line lacks a field or its question is
            blank, an id repeats, a tag names no known dimension, a variable has no value, or
            no question is in `languages`.
    """
    path = Path(path)
    questions: list[Question] = []
    seen: set[str] = set()
    for number, row in _jsonl(path, "questions"):
        where = f"{path}:{number}"
        _require(row, QUESTION_FIELDS, where)
        qid = str(row["id"])
        text = row["question"]
        if not isinstance(text, str) or not text.strip() or qid in seen:
            raise DataError(f"{where}: question {qid} is blank or its id repeats; fix the line.")
        seen.add(qid)
        tags = row["tags"]
        if not isinstance(tags, list) or not tags:
            raise DataError(f"{where}: tags must be a non-empty list of dimension names.")
        if any(not str(t).strip() for t in tags):
            log.warning("ANIMA question %s has a blank tag; skipped, as the benchmark does", qid)
            continue
        unknown = [t for t in tags if t not in dimensions]
        if unknown:
            raise DataError(
                f"{where}: tag(s) {unknown} name no known dimension; use one of "
                f"{list(dimensions)} (dimensions.jsonl)."
            )
        questions.append(
            Question(
                id=qid,
                question=text,
                tags=[str(t) for t in tags],
                variables=parse_variables(row["variables"], where),
                language=str(row["language"] or ENGLISH),
            )
        )
    if languages is not None:
        wanted = {lang.strip() for lang in languages}
        kept = [q for q in questions if q.language in wanted]
        if not kept:
            found = sorted({q.language for q in questions})
            raise DataError(
                f"no ANIMA question is in {sorted(wanted)}; languages in {path}: {found}. Fix "
                "anima.languages (or leave it out for all languages)."
            )
        questions = kept
    return questions[:limit] if limit is not None else questions


def load_anima(
    folder: str | Path, *, languages: Sequence[str] | None = (ENGLISH,), limit: int | None = None
) -> tuple[dict[str, Dimension], list[Question]]:
    """The dimensions and the questions of an ANIMA folder, checked (see `load_questions`)."""
    folder = Path(folder)
    dims = load_dimensions(folder / "dimensions.jsonl")
    return dims, load_questions(folder / "questions.jsonl", dims, languages=languages, limit=limit)


def anima_folder(config: RunConfig) -> Path:
    """The folder of the ANIMA questions: `anima.source`, else `<real_data_dir>/anima`.

    Raises:
        ConfigError: neither is set.
    """
    if config.anima.source is not None:
        return Path(resolve_data_path(config.anima.source, config))
    if config.real_data_dir is not None:
        return Path(config.real_data_dir) / "anima"
    raise ConfigError(
        "anima.enabled needs the ANIMA questions: set anima.source to a folder holding "
        "questions.jsonl and dimensions.jsonl (e.g. ../shared/data/anima) or real_data_dir."
    )


def run_questions(config: RunConfig) -> tuple[dict[str, Dimension], list[Question]]:
    """The run's dimensions and questions (its `anima.languages` and `anima.limit` applied).

    Raises:
        ConfigError: no question folder is configured.
        DataError: a bad question or dimension file.
    """
    cfg = config.anima
    return load_anima(anima_folder(config), languages=cfg.languages, limit=cfg.limit)
