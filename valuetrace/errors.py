"""The single exception type for bad input: its message names the problem and the fix."""


class ValuetraceError(ValueError):
    """Raised for bad input or state; the message says what is wrong and what to do."""
