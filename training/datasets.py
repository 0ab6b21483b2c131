"""One loader for every training/eval text source, giving one record type per format.

`Document` rows feed next-token (mid-)training; `PromptResponse` rows feed SFT with loss on the
response only. Sources are local `.jsonl` / `.json` / `.csv` files, hub dataset ids, or an
already-built `datasets.Dataset`; the schema (documents, Dolly, Alpaca, chat messages) is detected
from the columns or given explicitly.
"""

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, get_args

from valuetrace.config import DataSource, RunConfig, Schema
from valuetrace.errors import ConfigError, DataError
from valuetrace.prompts import chat_messages, plain_prompt
from valuetrace.training.sources import Row, Source, read_rows


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

_SCHEMAS: tuple[str, ...] = get_args(Schema)
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
    rows, origin = read_rows(source, split)
    if not rows:
        raise DataError(f"{origin} has no rows; point at a non-empty dataset")
    columns = _common_columns(rows)
    resolved = _resolve_schema(schema, rows, columns, text_field, origin)
    numbered = _filter_rows(rows, where or {}, columns, origin)
    records = _convert(numbered, _converter(resolved, text_field), origin, drop_empty)
    if shuffle:
        random.Random(seed).shuffle(records)
    return records[:limit]


def load_options(config: RunConfig, data: DataSource) -> dict[str, Any]:
    """`load_records` keyword arguments of a configured data source (a capped one is shuffled)."""
    return {
        "schema": data.schema,
        "split": data.split,
        "limit": data.limit,
        "where": data.where,
        "drop_empty": data.drop_empty,
        "seed": config.seed,
        "shuffle": data.limit is not None,
    }


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
