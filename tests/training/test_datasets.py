"""Tests for training.datasets: every source format and schema, every bad input, the real data."""

import csv
import json
import time
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset, DatasetDict
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

import valuetrace.training.sources as sources
from valuetrace.errors import ValuetraceError
from valuetrace.prompts import format_prompt
from valuetrace.training.datasets import (
    Document,
    PromptResponse,
    load_records,
    records_hash,
    sft_conversational,
    sft_prompt_completion,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"real data folder {DATA} is absent (../shared/data beside the repo)"
)

DOLLY_COLUMNS = ("instruction", "context", "response", "category")
DOLLY = [
    dict(zip(DOLLY_COLUMNS, values, strict=True))
    for values in [
        (" Why is the sky blue? ", "", "Rayleigh.", "open_qa"),
        ("Summarise.", "Cats sleep a lot.\n", "Cats nap.", "summarization"),
        ("Capital of France?", "", "  Paris\n", "open_qa"),
    ]
]
DOLLY_RECORDS = [
    PromptResponse("Why is the sky blue?", "Rayleigh."),
    PromptResponse("Summarise.\n\nCats sleep a lot.", "Cats nap."),
    PromptResponse("Capital of France?", "Paris"),
]
ALPACA = [
    {"instruction": "Add numbers.", "input": "1, 2", "output": "3"},
    {"instruction": "Say hi.", "input": "", "output": "hi"},
]
ALPACA_RECORDS = [PromptResponse("Add numbers.\n\n1, 2", "3"), PromptResponse("Say hi.", "hi")]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows in the format named by the path's suffix (json writes a plain list)."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    else:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def chat(*turns: tuple[str, str]) -> dict[str, list[dict[str, str]]]:
    """A messages-schema row from (role, content) pairs."""
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


def error_of(source: Any, **kwargs: Any) -> str:
    """The ValuetraceError message load_records raises for this input."""
    with pytest.raises(ValuetraceError) as info:
        load_records(source, **kwargs)
    return str(info.value)


# --- formats and schemas ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
@pytest.mark.parametrize(
    ("rows", "expected"),
    [(DOLLY, DOLLY_RECORDS), (ALPACA, ALPACA_RECORDS)],
    ids=["dolly", "alpaca"],
)
def test_instruction_schemas_load_from_every_format(
    tmp_path: Path, suffix: str, rows: list[dict[str, Any]], expected: list[PromptResponse]
) -> None:
    assert load_records(write(tmp_path / f"d{suffix}", rows)) == expected


def test_json_data_wrapper_and_explicit_schema(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"data": ALPACA, "version": 1}), encoding="utf-8")
    assert load_records(path, schema="alpaca") == ALPACA_RECORDS
    assert load_records(str(path)) == ALPACA_RECORDS


def test_documents_with_default_and_custom_text_field(tmp_path: Path) -> None:
    rows = [{"text": "  one\n\ntwo  ", "id": 1}, {"text": "three", "id": 2}]
    assert load_records(write(tmp_path / "docs.jsonl", rows)) == [
        Document("one\n\ntwo"),
        Document("three"),
    ]
    body = write(
        tmp_path / "body.csv", [{"body": "alpha", "label": "1"}, {"body": "beta", "label": "0"}]
    )
    assert load_records(body, text_field="body") == [Document("alpha"), Document("beta")]
    assert load_records(body, schema="documents", text_field="body")[1] == Document("beta")


def test_messages_single_and_multi_turn_with_system(tmp_path: Path) -> None:
    rows = [
        chat(("user", "Hi?"), ("assistant", " Hi. ")),
        chat(
            ("system", "Be kind."),
            ("user", "I lost my cat."),
            ("assistant", "I'm sorry."),
            ("user", "What now?"),
            ("assistant", "Check shelters."),
        ),
    ]
    assert load_records(write(tmp_path / "chat.jsonl", rows)) == [
        PromptResponse("Hi?", "Hi."),
        PromptResponse(
            "User: I lost my cat.\nAssistant: I'm sorry.\n\nWhat now?",
            "Check shelters.",
            "Be kind.",
        ),
    ]


def test_dataset_and_dataset_dict_objects_are_sources() -> None:
    dataset = Dataset.from_list(DOLLY)
    assert load_records(dataset) == DOLLY_RECORDS
    assert load_records(DatasetDict({"test": dataset}), split="test") == DOLLY_RECORDS
    assert "no split 'train'" in error_of(DatasetDict({"test": dataset}))


def test_auto_prefers_dolly_over_documents_and_extra_columns_are_fine(tmp_path: Path) -> None:
    rows = [{**DOLLY[0], "text": "also here", "extra": 5}]
    assert load_records(write(tmp_path / "x.jsonl", rows)) == DOLLY_RECORDS[:1]
    assert load_records(tmp_path / "x.jsonl", schema="documents") == [Document("also here")]


# --- where, limit, shuffle ----------------------------------------------------------------------


def test_where_filters_before_conversion_and_limit_takes_first(tmp_path: Path) -> None:
    path = write(tmp_path / "dolly.jsonl", DOLLY)
    open_qa = load_records(path, where={"category": "open_qa"})
    assert open_qa == [DOLLY_RECORDS[0], DOLLY_RECORDS[2]]
    assert load_records(path, limit=2) == DOLLY_RECORDS[:2]
    assert load_records(path, limit=10) == DOLLY_RECORDS


def test_shuffle_is_seeded_and_limit_applies_after_it(tmp_path: Path) -> None:
    path = write(tmp_path / "docs.jsonl", [{"text": f"doc {i}"} for i in range(30)])
    first = load_records(path, shuffle=True, seed=3)
    assert first == load_records(path, shuffle=True, seed=3)
    assert first != load_records(path, shuffle=True, seed=4)
    assert sorted(d.text for d in first) == sorted(f"doc {i}" for i in range(30))
    assert load_records(path, shuffle=True, seed=3, limit=5) == first[:5]


# --- bad input ----------------------------------------------------------------------------------


def test_empty_fields_name_row_and_field(tmp_path: Path) -> None:
    rows = [dict(DOLLY[0]), {**DOLLY[1], "response": "   "}, {**DOLLY[2], "instruction": "\n"}]
    message = error_of(write(tmp_path / "d.jsonl", rows))
    assert "row 2 ('response')" in message
    assert "row 3 ('instruction')" in message
    assert "drop_empty=True" in message
    assert load_records(tmp_path / "d.jsonl", drop_empty=True) == DOLLY_RECORDS[:1]
    doc = write(tmp_path / "docs.csv", [{"text": "ok"}, {"text": " "}])
    assert "row 2 ('text')" in error_of(doc)


def test_empty_field_row_number_is_file_order_even_after_where(tmp_path: Path) -> None:
    rows = [DOLLY[0], DOLLY[1], {**DOLLY[2], "response": ""}]
    message = error_of(write(tmp_path / "d.json", rows), where={"category": "open_qa"})
    assert "row 3 ('response')" in message


def test_every_row_empty_after_drop_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "docs.jsonl", [{"text": ""}, {"text": "  "}])
    assert "nothing to load" in error_of(path, drop_empty=True)


def test_non_text_value_names_row_and_field(tmp_path: Path) -> None:
    path = write(tmp_path / "docs.jsonl", [{"text": "ok"}, {"text": 42}])
    message = error_of(path)
    assert "row 2" in message
    assert "'text' must be text" in message


def test_malformed_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "b"\n', encoding="utf-8")
    assert "line 3 is not valid JSON" in error_of(path)
    broken = tmp_path / "bad.json"
    broken.write_text('[\n{"text": "a"},\n{"text" "b"}\n]', encoding="utf-8")
    assert "line 3" in error_of(broken)
    scalar = tmp_path / "scalar.jsonl"
    scalar.write_text('{"text": "a"}\n[1, 2]\n', encoding="utf-8")
    assert "line 2 is a JSON list, not an object" in error_of(scalar)


def test_json_of_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "obj.json"
    path.write_text(json.dumps({"rows": ALPACA}), encoding="utf-8")
    assert '{"data": [...]}' in error_of(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [("a.csv", ""), ("b.csv", "text\n"), ("c.jsonl", "\n\n"), ("d.json", "[]")],
    ids=["csv-no-header", "csv-header-only", "jsonl-blank", "json-empty-list"],
)
def test_empty_files_are_errors(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert "has no rows" in error_of(path)


def test_auto_detection_failure_lists_columns_and_schemas(tmp_path: Path) -> None:
    message = error_of(write(tmp_path / "q.csv", [{"question": "q", "answer": "a"}]))
    assert "question, answer" in message
    for expected in (
        "instruction, response",
        "instruction, input, output",
        "messages",
        "text",
    ):
        assert expected in message


def test_explicit_schema_names_missing_columns_and_file(tmp_path: Path) -> None:
    path = write(tmp_path / "alpaca.jsonl", ALPACA)
    message = error_of(path, schema="dolly")
    assert "missing column(s) response" in message
    assert str(path) in message
    partial = write(tmp_path / "partial.jsonl", [DOLLY[0], {"instruction": "x", "context": "y"}])
    assert "present in only some rows" in error_of(partial, schema="dolly")


def test_instruction_response_rows_without_context_load_as_dolly(tmp_path: Path) -> None:
    """Magicoder-style rows (instruction, response) need no context column."""
    path = write(
        tmp_path / "magicoder.jsonl", [{"instruction": "Sort a list.", "response": "sorted(x)"}]
    )
    assert load_records(path) == [PromptResponse(prompt="Sort a list.", response="sorted(x)")]


def test_messages_problems_name_the_row(tmp_path: Path) -> None:
    good = chat(("user", "a"), ("assistant", "b"))
    cases = {
        "ends with 'user'": chat(("user", "a")),
        "must be a list": {"messages": "user: a"},
        "directly follow a user turn": chat(("system", "s"), ("assistant", "b")),
    }
    for expected, bad in cases.items():
        path = write(tmp_path / "chat.jsonl", [good, bad])
        message = error_of(path)
        assert "row 2" in message
        assert expected in message
    empty = chat(("user", "a"), ("assistant", " "))
    message = error_of(write(tmp_path / "chat.jsonl", [good, empty]))
    assert "row 2 ('final assistant message')" in message


def test_where_problems(tmp_path: Path) -> None:
    path = write(tmp_path / "dolly.jsonl", DOLLY)
    assert "unknown column(s) kind" in error_of(path, where={"kind": "open_qa"})
    message = error_of(path, where={"category": "open-qa"})
    assert "no rows match" in message
    assert "'open_qa'" in message


def test_bad_arguments_and_paths(tmp_path: Path) -> None:
    path = write(tmp_path / "docs.jsonl", [{"text": "a"}])
    assert "unknown schema" in error_of(path, schema="chat")
    assert "positive integer" in error_of(path, limit=0)
    missing = tmp_path / "nope.jsonl"
    assert str(missing) in error_of(missing)
    assert "no such file" in error_of("data/missing.jsonl")
    assert "no such file" in error_of("missing")
    assert "not a file" in error_of(tmp_path)
    other = tmp_path / "docs.parquet"
    other.write_bytes(b"PAR1")
    assert "unsupported file type '.parquet'" in error_of(other)
    assert "got int" in error_of(3)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"text": "caf\xe9"}\n'.encode("latin-1"))
    assert "not UTF-8" in error_of(latin)


# --- hub ids ------------------------------------------------------------------------------------


def test_hub_id_offline_fails_fast_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.perf_counter()
    message = error_of("databricks/databricks-dolly-15k")
    assert time.perf_counter() - start < 5
    assert "could not load dataset 'databricks/databricks-dolly-15k'" in message
    assert "Hugging Face Hub" in message
    assert "local" in message
    assert "pre-download" in message


def test_hub_load_failure_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(dataset_id: str, split: str) -> None:
        raise ConnectionError(f"cannot reach {dataset_id}")

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sources, "load_dataset", unreachable)
    message = error_of("owner/name", split="test")
    assert "could not load dataset 'owner/name' (split 'test')" in message
    assert "ConnectionError: cannot reach owner/name" in message


# --- hashing and SFT formats --------------------------------------------------------------------


def test_records_hash_is_stable_and_sensitive() -> None:
    digest = records_hash(DOLLY_RECORDS)
    assert digest == records_hash(list(DOLLY_RECORDS))
    assert len(digest) == 64
    changed = [*DOLLY_RECORDS[:2], PromptResponse("Capital of France?", "Paris!")]
    assert records_hash(changed) != digest
    assert records_hash([PromptResponse("p", "r", "s")]) != records_hash([PromptResponse("p", "r")])
    assert records_hash(DOLLY_RECORDS[::-1]) != digest
    assert records_hash([Document("x")]) != records_hash([Document("y")])
    with pytest.raises(ValuetraceError, match="got dict at index 0"):
        records_hash([{"text": "x"}])  # type: ignore[list-item]


def test_sft_prompt_completion_shape() -> None:
    rows = sft_prompt_completion([PromptResponse("Q?", "A."), PromptResponse("Q2", "A2", "Sys")])
    assert rows == [
        {"prompt": "### Instruction:\nQ?\n\n### Response:\n", "completion": "A."},
        {
            "prompt": "### System:\nSys\n\n### Instruction:\nQ2\n\n### Response:\n",
            "completion": "A2",
        },
    ]


def test_sft_conversational_shape() -> None:
    rows = sft_conversational([PromptResponse("Q?", "A."), PromptResponse("Q2", "A2", "Sys")])
    assert rows[0] == {
        "prompt": [{"role": "user", "content": "Q?"}],
        "completion": [{"role": "assistant", "content": "A."}],
    }
    assert rows[1]["prompt"] == [
        {"role": "system", "content": "Sys"},
        {"role": "user", "content": "Q2"},
    ]


def test_sft_formats_reject_documents() -> None:
    for convert in (sft_prompt_completion, sft_conversational):
        with pytest.raises(ValuetraceError, match="needs PromptResponse records, got Document"):
            convert([Document("x")])  # type: ignore[list-item]


def tiny_tokenizer(chat_template: str | None) -> PreTrainedTokenizerFast:
    """A real (word-level, two-token) tokenizer built locally, optionally with a chat template."""
    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "hi": 1}, unk_token="[UNK]"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    tokenizer.chat_template = chat_template
    return tokenizer


def test_format_prompt_matches_the_training_formats() -> None:
    record = PromptResponse("Q2", "A2", "Sys")
    plain = tiny_tokenizer(None)
    assert (
        format_prompt("Q2", plain, chat=False, system="Sys")
        == (sft_prompt_completion([record])[0]["prompt"])
    )
    template = (
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    chat = tiny_tokenizer(template)
    assert (
        format_prompt("Q2", chat, chat=True, system="Sys")
        == "<|system|>Sys\n<|user|>Q2\n<|assistant|>"
    )
    with pytest.raises(ValuetraceError, match="no chat template"):
        format_prompt("Q2", plain, chat=True)


# --- real data ----------------------------------------------------------------------------------


@needs_data
def test_real_dolly_open_qa() -> None:
    path = DATA / "dolly" / "dolly_open_qa.jsonl"
    auto = load_records(path)
    assert len(auto) == 3742
    assert all(isinstance(record, PromptResponse) for record in auto)
    assert load_records(path, schema="dolly", where={"category": "open_qa"}) == auto
    assert records_hash(auto) == records_hash(load_records(path))


@needs_data
def test_real_code_alpaca_has_two_empty_outputs() -> None:
    path = DATA / "code" / "code_alpaca_2k.json"
    message = error_of(path, schema="alpaca")
    assert "2 row(s)" in message
    assert "row 238 ('output')" in message
    assert "row 1860 ('output')" in message
    records = load_records(path, drop_empty=True)
    assert len(records) == 2015
    assert all(isinstance(record, PromptResponse) for record in records)
