"""A console a person can read: one progress bar per step and stage, valuetrace's own warnings
once each, and everything else (transformers / datasets / TRL logs, per-step loss dicts,
FutureWarnings) only with `--verbose`. The full log always goes to the run folder's `log.txt`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

THIRD_PARTY = ("transformers", "datasets", "trl", "accelerate", "peft", "huggingface_hub")
_TAG = "_valuetrace_handler"


class _ConsoleFilter(logging.Filter):
    """Without --verbose: only valuetrace's own records, each source line once (repeats and
    everything else still reach log.txt)."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose
        self.seen: set[tuple[str, int]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose:
            return True
        if not record.name.startswith("valuetrace"):
            return False
        key = (record.name, record.lineno)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def configure(*, verbose: bool, progress: bool, log_file: Path | None = None) -> None:
    """Route every log record and warning: the console shows what `verbose` allows, `log_file`
    (when given) gets all of it at INFO and above. Calling it again replaces the handlers it
    added before (the CLI may run several commands in one process)."""
    import datasets
    import transformers

    root = logging.getLogger()
    close()
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.addFilter(_ConsoleFilter(verbose))
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setLevel(logging.INFO)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(to_file)
    for handler in handlers:
        setattr(handler, _TAG, True)
        root.addHandler(handler)
    logging.captureWarnings(True)  # warnings become records of "py.warnings"
    # The libraries' own stderr handlers go; their records propagate to the handlers above.
    transformers.utils.logging.disable_default_handler()
    transformers.utils.logging.enable_propagation()
    datasets.utils.logging.enable_propagation()
    for name in THIRD_PARTY:
        library = logging.getLogger(name)
        for handler in list(library.handlers):
            library.removeHandler(handler)
        library.propagate = True
        library.setLevel(logging.INFO if verbose else logging.WARNING)
    if verbose and progress:
        datasets.enable_progress_bars()
        transformers.utils.logging.enable_progress_bar()
    else:  # "Tokenizing train dataset" and the like are not a step's progress
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()


def close() -> None:
    """Remove (and close) the handlers `configure` added."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _TAG, False)]:
        root.removeHandler(handler)
        handler.close()


def progress_bar(
    items: Iterable[T], desc: str, *, enabled: bool, total: int | None = None, unit: str = "stage"
) -> Iterator[T]:
    """`items`, with one tqdm bar labelled `desc` when `enabled` (none at all otherwise)."""
    if not enabled:
        yield from items
        return
    yield from tqdm(items, desc=desc, total=total, unit=unit, dynamic_ncols=True, leave=True)
