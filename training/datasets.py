"""One loader for every training/eval text source, giving one record type per format.

`Document` rows feed next-token (mid-)training; `PromptResponse` rows feed SFT with loss on the
response only. Sources are local `.jsonl` / `.json` / `.csv` files, hub dataset ids, or an
already-built `datasets.Dataset`; the schema (documents, Dolly, Alpaca, chat messages) is detected
from the columns or given explicitly.
"""

import csv
import hashlib
import json
import os
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, get_args

from datasets import Dataset, DatasetDict, load_dataset

from valuetrace.config import Schema
from valuetrace.errors import ConfigError, DataError
from valuetrace.prompts import chat_messages, plain_prompt


@dataclass(frozen=True)
class Document:
    """A plain text trained with next-token loss on the whole text (mid-training corpora)."""

    text: str


@dataclass(frozen=True)
class PromptResponse:
    """One SFT example: loss falls on `response` only, `prompt` (and `system`) are context."""

    prompt: str
    response: str
    system: str | None = None


Record = Document | PromptResponse
Source = str | Path | Dataset | DatasetDict
Row = dict[str, Any]

_SCHEMAS: tuple[str, ...] = get_args(Schema)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FILE_SUFFIXES = (".jsonl", ".json", ".csv")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUTHY = {"1", "ON", "YES", "TRUE"}
_SHOWN = 5  # how many offending rows / values an error message lists


class _RowProblem(Exception):
    """A problem with one row; `load_records` reraises it as a ValuetraceError naming the row."""


class _EmptyField(_RowProblem):
    """A required text field is empty or whitespace-only (collected, or skipped with drop_empty)."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def load_records(
    source: Source,
    schema: Schema = "auto",
    *,
    split: str = "train",
    text_field: str = "text",
    limit: int | None = None,
    where: Mapping[str, str] | None = None,
    seed: int = 0,
    shuffle: bool = False,
    drop_empty: bool = False,
) -> list[Document] | list[PromptResponse]:
    """Read a file, hub id or `datasets.Dataset` into checked records: one loader for every stage.

    `where` keeps rows whose columns equal the given values (before conversion); `limit` keeps the
    first N records after an optional seeded shuffle; `drop_empty` skips rows with an empty
    required field instead of raising.
    """
    if schema not in _SCHEMAS:
        raise ConfigError(f"unknown schema {schema!r}; use one of {', '.join(_SCHEMAS)}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}")
    rows, origin = _read_rows(source, split)
    if not rows:
        raise DataError(f"{origin} has no rows; point at a non-empty dataset")
    columns = _common_columns(rows)
    resolved = _resolve_schema(schema, rows, columns, text_field, origin)
    numbered = _filter_rows(rows, where or {}, columns, origin)
    records = _convert(numbered, _converter(resolved, text_field), origin, drop_empty)
    if shuffle:
        random.Random(seed).shuffle(records)
    return records[:limit]


def records_hash(records: Iterable[Record]) -> str:
    """Sha256 hex of a canonical JSON of the records: the data hash recorded in lineage and HDF5."""
    payload = []
    for index, record in enumerate(records):
        if not isinstance(record, Document | PromptResponse):
            raise DataError(
                f"records_hash got {type(record).__name__} at index {index}; "
                "pass the Document/PromptResponse list returned by load_records"
            )
        payload.append({"type": type(record).__name__, **asdict(record)})
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def sft_prompt_completion(records: Sequence[PromptResponse]) -> list[dict[str, str]]:
    """TRL prompt-completion rows in a plain Instruction/Response format, for no-template models."""
    return [
        {"prompt": plain_prompt(record.prompt, record.system), "completion": record.response}
        for record in _prompt_responses(records, "sft_prompt_completion")
    ]


def sft_conversational(records: Sequence[PromptResponse]) -> list[dict[str, list[dict[str, str]]]]:
    """TRL conversational prompt-completion rows, for tokenizers that have a chat template.

    Extraction and behaviour scoring feed the ids TRL's `SFTTrainer` builds from these rows
    (`valuetrace.prompts.token_spans`, checked against TRL in tests/valuetrace/test_prompts.py).
    """
    return [
        {
            "prompt": chat_messages(record.prompt, record.system),
            "completion": [{"role": "assistant", "content": record.response}],
        }
        for record in _prompt_responses(records, "sft_conversational")
    ]


def _prompt_responses(records: Sequence[PromptResponse], caller: str) -> Sequence[PromptResponse]:
    """Check that every record is a PromptResponse, since Documents have no prompt to mask."""
    for index, record in enumerate(records):
        if not isinstance(record, PromptResponse):
            raise DataError(
                f"{caller} needs PromptResponse records, got {type(record).__name__} at index "
                f"{index}; load an SFT schema (dolly, alpaca, messages) — Documents are for "
                "next-token training"
            )
    return records


# --- reading sources into raw rows -------------------------------------------------------------


def _read_rows(source: Source, split: str) -> tuple[list[Row], str]:
    """Raw rows plus a human-readable name of where they came from (used in every error)."""
    if isinstance(source, DatasetDict):
        if split not in source:
            raise DataError(
                f"the given DatasetDict has no split {split!r} (splits: {', '.join(source)}); "
                "pass split= one of those"
            )
        source = source[split]
    if isinstance(source, Dataset):
        return list(source), "the given datasets.Dataset"
    if not isinstance(source, str | Path):
        raise DataError(
            f"source must be a path, a hub dataset id or a datasets.Dataset, "
            f"got {type(source).__name__}"
        )
    path = Path(source)
    if path.is_file():
        return _read_file(path), str(path)
    if path.exists():
        raise DataError(f"{path} is not a file; pass a {'/'.join(_FILE_SUFFIXES)} file")
    if isinstance(source, str) and _looks_like_hub_id(source):
        return _read_hub(source, split), f"hub dataset {source!r} (split {split!r})"
    raise DataError(
        f"{source}: no such file; pass an existing {'/'.join(_FILE_SUFFIXES)} path "
        "or a hub dataset id such as 'databricks/databricks-dolly-15k'"
    )


def _looks_like_hub_id(source: str) -> bool:
    """`owner/name` without a data-file suffix (a missing `x/y.jsonl` is a mistyped path)."""
    return bool(_HUB_ID.match(source)) and not source.lower().endswith(_FILE_SUFFIXES)


def _read_hub(dataset_id: str, split: str) -> list[Row]:
    """Load a hub dataset split, failing fast (no network retries) when offline mode is set."""
    fix = (
        "Pass a local .jsonl/.json/.csv path instead, or pre-download it where the hub is "
        f"reachable (datasets.load_dataset({dataset_id!r}, split={split!r}).to_json('x.jsonl')) "
        "and pass that file."
    )
    offline = [name for name in _OFFLINE_VARS if os.environ.get(name, "").upper() in _TRUTHY]
    if offline:
        raise DataError(
            f"could not load dataset {dataset_id!r} from the Hugging Face Hub: offline mode is "
            f"on ({', '.join(offline)} set). {fix}"
        )
    try:
        dataset = load_dataset(dataset_id, split=split)
    except Exception as exc:
        raise DataError(
            f"could not load dataset {dataset_id!r} (split {split!r}) from the Hugging Face "
            f"Hub: {type(exc).__name__}: {exc}. {fix}"
        ) from exc
    return list(dataset)


def _read_file(path: Path) -> list[Row]:
    """Dispatch on the file suffix; a non-UTF-8 file is reported rather than half-read."""
    readers: dict[str, Callable[[Path], list[Row]]] = {
        ".jsonl": _read_jsonl,
        ".json": _read_json,
        ".csv": _read_csv,
    }
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; "
            f"convert it to one of {', '.join(_FILE_SUFFIXES)}"
        )
    try:
        return reader(path)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc}); re-encode it as UTF-8") from exc


def _read_jsonl(path: Path) -> list[Row]:
    """One JSON object per non-blank line."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}, line {line_number}: malformed JSON ({exc.msg}); fix or remove "
                    "that line"
                ) from exc
            rows.append(_as_row(item, path, f"line {line_number}"))
    return rows


def _read_json(path: Path) -> list[Row]:
    """A JSON list of objects, or an object whose "data" key holds that list."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}, line {exc.lineno} column {exc.colno}: malformed JSON ({exc.msg}); fix it"
        ) from exc
    if isinstance(content, dict) and isinstance(content.get("data"), list):
        content = content["data"]
    if not isinstance(content, list):
        raise DataError(
            f'{path}: expected a JSON list of objects or {{"data": [...]}}, '
            f"got {type(content).__name__}; reshape the file (or save it as .jsonl)"
        )
    return [_as_row(item, path, f"item {index}") for index, item in enumerate(content, start=1)]


def _read_csv(path: Path) -> list[Row]:
    """A CSV with a header row; values beyond the header are ignored, missing ones read as empty."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            return [{key: value for key, value in row.items() if key is not None} for row in reader]
        except csv.Error as exc:
            raise DataError(
                f"{path}, line {reader.line_num}: malformed CSV ({exc}); fix that line"
            ) from exc


def _as_row(item: object, path: Path, where: str) -> Row:
    """Every JSON row must be an object (column name → value)."""
    if not isinstance(item, dict):
        raise DataError(
            f"{path}, {where}: expected a JSON object, got {type(item).__name__}; "
            "each row must map column names to values"
        )
    return item


# --- schema, filtering and conversion ---------------------------------------------------------


def _schema_columns(text_field: str) -> dict[str, tuple[str, ...]]:
    """Required columns per schema, in auto-detection priority order."""
    return {
        "dolly": ("instruction", "response"),  # context optional: Magicoder has none
        "alpaca": ("instruction", "input", "output"),
        "messages": ("messages",),
        "documents": (text_field,),
    }


def _common_columns(rows: list[Row]) -> list[str]:
    """Columns present in every row, in first-row order."""
    return [column for column in rows[0] if all(column in row for row in rows)]


def _resolve_schema(
    schema: Schema, rows: list[Row], columns: list[str], text_field: str, origin: str
) -> str:
    """Detect the schema from the columns, or check that an explicit schema's columns exist."""
    expected = _schema_columns(text_field)
    if schema == "auto":
        for name, needed in expected.items():
            if set(needed) <= set(columns):
                return name
        options = "; ".join(f"{name}: {', '.join(needed)}" for name, needed in expected.items())
        raise DataError(
            f"{origin}: cannot detect the schema from columns [{', '.join(columns)}]; expected "
            f"the columns of one of ({options}). Rename the columns, or pass schema= (and "
            "text_field= for documents)"
        )
    missing = [column for column in expected[schema] if column not in columns]
    if missing:
        partial = [column for column in missing if any(column in row for row in rows)]
        note = f" ({', '.join(partial)} present in only some rows)" if partial else ""
        raise DataError(
            f"{origin}: schema {schema!r} needs missing column(s) {', '.join(missing)}{note}; "
            f"found [{', '.join(columns)}]. Rename the columns, fix the rows, or use schema='auto'"
        )
    return schema


def _filter_rows(
    rows: list[Row], where: Mapping[str, str], columns: list[str], origin: str
) -> list[tuple[int, Row]]:
    """Rows (with 1-based file-order numbers) whose columns equal every `where` value."""
    unknown = [column for column in where if column not in columns]
    if unknown:
        raise DataError(
            f"{origin}: where= filters on unknown column(s) {', '.join(unknown)}; "
            f"found [{', '.join(columns)}]"
        )
    kept = [
        (number, row)
        for number, row in enumerate(rows, start=1)
        if all(row[column] == value for column, value in where.items())
    ]
    if not kept:
        seen = "; ".join(
            f"{column}: {', '.join(sorted({repr(row[column]) for row in rows})[:_SHOWN])}"
            for column in where
        )
        raise DataError(
            f"{origin}: no rows match where={dict(where)!r} (values seen, first {_SHOWN}: {seen}); "
            "fix the filter values"
        )
    return kept


def _convert(
    numbered: list[tuple[int, Row]],
    convert: Callable[[Row], Record],
    origin: str,
    drop_empty: bool,
) -> list[Record]:
    """Convert every row, collecting empty required fields so one error lists them all."""
    records: list[Record] = []
    empty: list[str] = []
    for number, row in numbered:
        try:
            records.append(convert(row))
        except _EmptyField as exc:
            empty.append(f"row {number} ({exc.field!r})")
        except _RowProblem as exc:
            raise DataError(f"{origin}, row {number}: {exc}") from None
    if empty and not drop_empty:
        more = f" and {len(empty) - _SHOWN} more" if len(empty) > _SHOWN else ""
        raise DataError(
            f"{origin}: {len(empty)} row(s) have an empty or whitespace-only required field: "
            f"{', '.join(empty[:_SHOWN])}{more}. Drop or fix these rows, or pass "
            "drop_empty=True to skip them"
        )
    if not records:
        raise DataError(
            f"{origin}: every selected row has an empty required field; nothing to load"
        )
    return records


def _converter(schema: str, text_field: str) -> Callable[[Row], Record]:
    """The row → record function for a resolved schema."""
    converters: dict[str, Callable[[Row], Record]] = {
        "documents": lambda row: Document(_required(row[text_field], text_field)),
        "dolly": lambda row: _instruction_record(row, "context", "response"),
        "alpaca": lambda row: _instruction_record(row, "input", "output"),
        "messages": _messages_record,
    }
    return converters[schema]


def _instruction_record(row: Row, extra: str, answer: str) -> PromptResponse:
    """Dolly/Alpaca: prompt = instruction, plus a blank line and the context/input if any."""
    instruction = _required(row["instruction"], "instruction")
    response = _required(row[answer], answer)
    context = _text(row.get(extra) or "", extra)
    prompt = f"{instruction}\n\n{context}" if context else instruction
    return PromptResponse(prompt=prompt, response=response)


def _messages_record(row: Row) -> PromptResponse:
    """Chat: response = final assistant turn, prompt = earlier turns as lines + last user turn."""
    messages = row["messages"]
    if not isinstance(messages, list) or not all(_is_message(message) for message in messages):
        raise _RowProblem(
            '\'messages\' must be a list of {"role": str, "content": str} objects; fix or drop '
            "the row"
        )
    system = None
    if messages and messages[0]["role"] == "system":
        system = _text(messages[0]["content"], "system message") or None
        messages = messages[1:]
    if not messages or messages[-1]["role"] != "assistant":
        last = repr(messages[-1]["role"]) if messages else "nothing"
        raise _RowProblem(
            f"the conversation ends with {last}, not an assistant turn, so it has no response to "
            "train on; drop the row or add the assistant reply"
        )
    if len(messages) < 2 or messages[-2]["role"] != "user":
        raise _RowProblem(
            "the final assistant turn must directly follow a user turn (the prompt); "
            "fix or drop the row"
        )
    response = _required(messages[-1]["content"], "final assistant message")
    question = _required(messages[-2]["content"], "last user message")
    history = "\n".join(
        f"{message['role'].capitalize()}: {_text(message['content'], 'message content')}"
        for message in messages[:-2]
    )
    prompt = f"{history}\n\n{question}" if history else question
    return PromptResponse(prompt=prompt, response=response, system=system)


def _is_message(message: object) -> bool:
    """A chat message: a dict with a string role and a content."""
    return (
        isinstance(message, dict) and isinstance(message.get("role"), str) and "content" in message
    )


def _text(value: object, field: str) -> str:
    """Stripped text; null reads as empty, any other non-string is a row problem."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _RowProblem(f"field {field!r} must be text, got {type(value).__name__}; fix the row")
    return value.strip()


def _required(value: object, field: str) -> str:
    """Stripped text that must not be empty."""
    text = _text(value, field)
    if not text:
        raise _EmptyField(field)
    return text
