"""Typed records that steps exchange, with a versioned JSON round trip.

A record is a dataclass that names its `SCHEMA` and `VERSION`. `save_record` writes it as JSON
(atomically: a temporary file, then a rename) with those two keys beside its fields;
`load_record` refuses a file of another schema or a newer version, and rebuilds nested
dataclasses from their annotations (`from_plain`), so a reader gets types, not dicts.

Every on-disk format of valuetrace (these records, the probe store, direction files, the
lineage) follows one versioning rule, `check_version`: a file states its format version; a
reader reads its own version and the older ones it knows how to read (from its oldest
readable version on, upgrading them in memory), and refuses a newer file (upgrade valuetrace)
or an older one it cannot read (rerun the step), naming the file, both versions and the fix.
A record upgrades older data with an optional `upgrade(body, version)` classmethod.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from valuetrace.errors import CacheError, DataError, MissingStepError, ValuetraceError


class Record(Protocol):
    """What `save_record` / `load_record` need: a dataclass with a schema name and version."""

    SCHEMA: ClassVar[str]
    VERSION: ClassVar[int]
    __dataclass_fields__: ClassVar[dict[str, Any]]


R = TypeVar("R", bound=Record)


_QUOTE = reprlib.Repr()  # keyword arguments need Python 3.12
_QUOTE.maxlevel, _QUOTE.maxdict, _QUOTE.maxlist, _QUOTE.maxstring = 2, 4, 4, 60
# A decimal number as YAML 1.2 writes it: PyYAML (YAML 1.1) reads `1e-3` as the string "1e-3"
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def short_repr(value: Any, limit: int = 80) -> str:
    """`repr(value)`, shortened to at most `limit` characters: an error quotes a bad value,
    never all of it (a value can be huge; building its full repr alone could exhaust memory)."""
    text = _QUOTE.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def from_plain(tp: Any, value: Any, where: str, *, error: type[ValuetraceError] = DataError) -> Any:
    """Convert plain data (YAML or JSON) into the annotated type `tp`, naming `where` on errors.

    Nested dataclasses, lists, dicts, unions, Literals and scalars are checked against their
    annotations; unknown fields are refused with the allowed ones listed.

    Raises:
        `error` (a `ValuetraceError` subclass): a value does not fit its annotation.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for inner in (a for a in args if a is not type(None)):
            try:
                return from_plain(inner, value, where, error=error)
            except ValuetraceError as err:
                errors.append(str(err))
        raise error(" or ".join(errors))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise error(f"{where}: expected a mapping, got {short_repr(value)}.")
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp) if f.init}
        unknown = sorted(set(value) - known)
        if unknown:
            raise error(f"{where}: unknown field(s) {unknown}; allowed fields: {sorted(known)}.")
        kwargs = {k: from_plain(hints[k], v, f"{where}.{k}", error=error) for k, v in value.items()}
        try:
            return tp(**kwargs)
        except TypeError as err:
            raise error(f"{where}: {err}") from err
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise error(f"{where}: {value!r} is not one of {[m.value for m in tp]}.") from None
    if origin is Literal:
        if value not in args:
            raise error(f"{where}: {short_repr(value)} is not one of {list(args)}.")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise error(f"{where}: expected a list, got {short_repr(value)}.")
        return [from_plain(args[0], v, f"{where}[{i}]", error=error) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise error(f"{where}: expected a mapping, got {short_repr(value)}.")
        return {
            _key(args[0], k, where, error): from_plain(args[1], v, f"{where}.{k}", error=error)
            for k, v in value.items()
        }
    if tp is float and value is None:
        return math.nan  # JSON has no NaN: an undefined value is written as null
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)  # `1e-3`: a number to the user, a string to YAML 1.1
    if tp is float:
        raise error(f"{where}: expected a number, got {short_repr(value)}.")
    if tp in (int, str, bool) and not (
        isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    ):
        raise error(f"{where}: expected {tp.__name__}, got {short_repr(value)}.")
    return value


def _key(tp: Any, key: Any, where: str, error: type[ValuetraceError]) -> Any:
    """A mapping key as its annotation says: JSON keys are strings, so int keys are parsed."""
    if tp is not int:
        return str(key)
    try:
        return int(key)
    except ValueError:
        raise error(f"{where}: key {key!r} is not an integer.") from None


def _plain(value: Any) -> Any:
    """JSON-ready data: NaN and infinities become null (JSON has no NaN), tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def record_to_dict(record: Record) -> dict[str, Any]:
    """The record as plain data, led by its `schema` and `schema_version`."""
    body = dataclasses.asdict(record)  # type: ignore[call-overload]
    return {"schema": record.SCHEMA, "schema_version": record.VERSION, **_plain(body)}


def check_version(
    kind: str,
    where: str,
    found: object,
    current: int,
    oldest: int = 1,
    *,
    fix: str = "rerun the step that writes it",
    error: type[ValuetraceError] = CacheError,
) -> int:
    """The versioning rule of every on-disk format: `found` (the file's stated version) must be
    an integer from `oldest` to `current`; returns it.

    Raises:
        `error`: the version is missing or not an integer, newer than `current` (upgrade
            valuetrace) or older than `oldest` (`fix`).
    """
    try:
        version = int(found)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        version = None
    if version is None or isinstance(found, bool) or version > current:
        raise error(
            f"{where} is {kind} version {found}, newer than this valuetrace reads ({current}) or "
            f"not a version; upgrade valuetrace, or {fix}."
        )
    if version < oldest:
        raise error(
            f"{where} is {kind} version {version}, older than this valuetrace reads "
            f"({oldest}–{current}); {fix}."
        )
    return version


def record_from_dict(cls: type[R], data: dict[str, Any], where: str) -> R:
    """Rebuild a record of type `cls` from plain data written by `record_to_dict`, upgrading an
    older version with the record's `upgrade` classmethod when it has one.

    Raises:
        CacheError: the data is of another schema, a newer version, or does not fit `cls`.
    """
    schema = data.get("schema")
    if schema != cls.SCHEMA:
        raise CacheError(
            f"{where} holds a '{schema}' record, not '{cls.SCHEMA}'; it was not written by this "
            "step. Rerun the step that writes it."
        )
    version = check_version(f"'{cls.SCHEMA}'", where, data.get("schema_version"), cls.VERSION)
    body = {k: v for k, v in data.items() if k not in ("schema", "schema_version")}
    upgrade = getattr(cls, "upgrade", None)
    if version < cls.VERSION and upgrade is not None:
        body = upgrade(body, version)
    return from_plain(cls, body, where, error=CacheError)


def save_record(record: Record, path: str | Path) -> Path:
    """Write `record` as versioned JSON to `path` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record_to_dict(record), indent=1, allow_nan=False))
    tmp.replace(path)
    return path


def load_record(cls: type[R], path: str | Path, *, step: str | None = None) -> R:
    """Read a record of type `cls` from `path`.

    Raises:
        MissingStepError: no file at `path` (naming `step`, the step that writes it).
        CacheError: the file is not valid JSON, or not a `cls` record of a version read here.
    """
    path = Path(path)
    if not path.is_file():
        hint = f"run `valuetrace {step}` first" if step else "run the step that writes it"
        raise MissingStepError(f"no {cls.SCHEMA} record at {path}; {hint}.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CacheError(
            f"{path} is not valid JSON ({err}); rerun the step that writes it."
        ) from err
    if not isinstance(data, dict):
        raise CacheError(f"{path} does not hold a JSON object; rerun the step that writes it.")
    return record_from_dict(cls, data, str(path))
