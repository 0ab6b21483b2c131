"""A console a person can read: one progress bar per step and stage, valuetrace's own warnings
once each, and everything else (transformers / datasets / TRL logs, per-step loss dicts,
FutureWarnings) only with `--verbose`. The full log always goes to the run folder's `log.txt`.

Bars are drawn only on a terminal (`show_bars`): with stderr redirected to a file (CI, `nohup`,
a batch job) each bar update would become a line of its own, so there a step prints one plain
line per finished stage instead.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Sized
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

from valuetrace.errors import ConfigError

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
        to_file = _log_handler(log_file)
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
    if verbose and show_bars(progress):
        datasets.enable_progress_bars()
        transformers.utils.logging.enable_progress_bar()
    else:  # "Tokenizing train dataset" and the like are not a step's progress
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()


def _log_handler(log_file: Path) -> logging.FileHandler:
    """A handler appending to `log_file`, or a clear error when the run folder is not writable.

    Raises:
        ConfigError: the folder or `log_file` cannot be created or written (read-only folder,
            no permission, a folder in its place); the path and the fix are named.
    """
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        return logging.FileHandler(log_file, encoding="utf-8")
    except OSError as err:
        raise ConfigError(
            f"cannot write the run's log {log_file} ({err.strerror or err}); the run folder must "
            "be writable. Make it writable (e.g. `chmod u+w`), or choose another run_dir "
            "(--run-dir)."
        ) from err


def show_bars(progress: bool) -> bool:
    """Whether to draw progress bars: asked for (`progress`) and stderr is a terminal.

    tqdm redraws a bar in place with carriage returns; in a file each redraw is a new line (a
    demo run wrote thousands). Every bar in valuetrace, and the Trainer's `disable_tqdm`, goes
    through this one check.
    """
    return progress and sys.stderr.isatty()


def close() -> None:
    """Remove (and close) the handlers `configure` added."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _TAG, False)]:
        root.removeHandler(handler)
        handler.close()


def progress_bar(
    items: Iterable[T], desc: str, *, enabled: bool, total: int | None = None, unit: str = "stage"
) -> Iterator[T]:
    """`items`, with one tqdm bar labelled `desc` when `enabled` on a terminal; when enabled but
    stderr is not a terminal (a log file), one line per finished item instead; nothing at all
    when not `enabled`."""
    if not enabled:
        yield from items
        return
    if show_bars(enabled):
        yield from tqdm(items, desc=desc, total=total, unit=unit, dynamic_ncols=True, leave=True)
        return
    if total is None and isinstance(items, Sized):
        total = len(items)
    for done, item in enumerate(items, start=1):
        yield item
        print(f"{desc}: {done}/{total if total is not None else '?'} {unit}s", file=sys.stderr)
