"""The exceptions valuetrace raises for bad input or state, one class per kind of fault.

Every class derives from `ValuetraceError` (itself a `ValueError`), so `except ValuetraceError`
catches them all, while a caller that needs to can tell a bad config from a stale cache or a
missing step. Every message names the problem and the fix.
"""

import errno


class ValuetraceError(ValueError):
    """Bad input or state; the message says what is wrong and what to do."""


class ConfigError(ValuetraceError):
    """A config field is unknown, of the wrong type, or out of range; the field is named."""


class DataError(ValuetraceError):
    """Input data or arrays are unusable: empty text, one-class labels, mismatched shapes."""


class CacheError(ValuetraceError):
    """An activation or probe cache is foreign, half-written, locked or made for another run."""


class CheckpointError(ValuetraceError):
    """A model, tokenizer or adapter cannot be found, read, converted or fitted to its base."""


class LineageError(ValuetraceError):
    """`lineage.json` is missing or malformed, or a recorded stage changed since it was recorded."""


class MissingStepError(ValuetraceError):
    """A step needs what an earlier step writes, and that step has not been run."""


def disk_full(err: BaseException) -> bool:
    """Whether `err` says the disk is full: an `OSError` with errno ENOSPC, or a library's own
    error that carries the system's message (safetensors and h5py wrap it in theirs)."""
    return (isinstance(err, OSError) and err.errno == errno.ENOSPC) or (
        "No space left on device" in str(err)
    )
