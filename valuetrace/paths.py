"""The layout of a run folder: every file a step reads or writes is named here, nowhere else.

Paths are derived from the run folder's root, so a run folder can be moved or copied and still
runs; anything stored inside the folder refers to its files relative to the root.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from valuetrace.errors import ConfigError, ValuetraceError

# A name that becomes one path part: a word character first (so never "", ".", ".." or a
# hidden file), then word characters, dots, dashes, plus signs or tildes (a replicate's "~seed1")
SAFE_NAME = re.compile(r"\w[\w.+~-]{0,99}")
# What valuetrace writes in a run folder before its config.yaml exists (a run that failed early)
_EARLY_FILES = frozenset({"log.txt", "timings.json", "environment.json"})


def check_name(name: str, field: str) -> None:
    """Refuse a name that would not be one safe path part of the run folder.

    Stage, probe-set and concept names become folder and file names (`checkpoints/<stage>`,
    `activations/<probe set>/<stage>.h5`); a name like `../../x` would read, write and delete
    outside the run folder.

    Raises:
        ConfigError: `name` is empty, longer than 100 characters, or holds a character other
            than letters, digits, `_ . - + ~` (or starts with `.`, `-`, `+` or `~`); `field`
            names the config field.
    """
    if not SAFE_NAME.fullmatch(name):
        shown = name if len(name) <= 40 else name[:40] + "…"
        raise ConfigError(
            f"{field} is {shown!r}, which cannot be a file or folder name in the run folder; use "
            "1 to 100 letters, digits and '_', '.', '-', '+', '~', starting with a letter, digit "
            "or '_' (e.g. 'sft_help')."
        )


def remove_inside(path: Path, root: Path) -> bool:
    """Delete the file or folder `path` only if it lies strictly inside the folder `root`.

    The check is on resolved paths (symlinks and `..` followed), so no name or link can make
    a delete reach outside the run folder. A symlink is removed itself, never its target.
    Returns whether something was removed (False when `path` does not exist).

    Raises:
        ValuetraceError: `path` is `root` itself or lies outside it; nothing is removed.
    """
    if not path.is_symlink() and not path.exists():
        return False
    base = root.resolve()
    where = path.parent.resolve() / path.name
    if base not in where.parents:
        raise ValuetraceError(
            f"refusing to delete {path}: it is not inside the run folder {base}. Nothing was "
            "removed; check the names in the config and lineage.json."
        )
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return True


def check_run_folder(root: Path) -> None:
    """Refuse a `run_dir` that is not (or cannot become) a valuetrace run folder.

    Accepted: a folder that does not exist yet, an empty one, one whose `config.yaml` is a
    valuetrace config, or one holding only the log files a run writes before its config.

    Raises:
        ConfigError: `root` is the filesystem root or the home folder, is a file, or holds
            other files and no valuetrace run (so steps would write into, and `--overwrite`
            would delete from, a user's folder).
    """
    resolved = root.resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        what = "filesystem root" if resolved == Path(resolved.anchor) else "home folder"
        raise ConfigError(
            f"run_dir {root} is the {what}; a run writes and deletes many files there. Give "
            "run_dir (or --run-dir) a folder of its own, e.g. runs/my-study."
        )
    if not resolved.exists():
        return
    if not resolved.is_dir():
        raise ConfigError(f"run_dir {root} is a file, not a folder; give a folder for the run.")
    entries = {p.name for p in resolved.iterdir()}
    if entries <= _EARLY_FILES or _is_run_config(RunPaths(resolved).config):
        return
    shown = ", ".join(sorted(entries)[:5]) + (", …" if len(entries) > 5 else "")
    raise ConfigError(
        f"run_dir {root} holds files ({shown}) but no valuetrace run (no config.yaml written "
        "by valuetrace); a run would overwrite them. Give run_dir (or --run-dir) a new or empty "
        "folder."
    )


def _is_run_config(path: Path) -> bool:
    """Whether `path` is a config.yaml as valuetrace writes it into a run folder."""
    if not path.is_file() or path.stat().st_size > 1 << 20:
        return False
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and {"run_dir", "stages", "probes"} <= set(data)


def stored_path(path: str | Path, root: Path) -> str:
    """How a run folder stores `path`: relative to `root` (posix) when it lies inside the folder,
    otherwise as given (a hub id, or a user's path outside the folder, absolute or not)."""
    text = str(path)
    candidate = Path(text)
    if not candidate.exists():
        return text  # a hub id, or nothing to relate
    try:
        return candidate.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return text


def resolved_path(stored: str, root: Path) -> str:
    """The usable form of a stored path: relative to `root` when it names something there,
    otherwise as stored (a hub id, an absolute path, or a path relative to the cwd)."""
    if not os.path.isabs(stored) and (root / stored).exists():
        return str(root / stored)
    return stored


def trainer_dir(checkpoint: Path) -> Path:
    """The Trainer's own checkpoint folder of a stage (kept beside the stage's output folder
    while it trains, so a killed stage resumes; removed when the stage is done)."""
    return checkpoint.parent / f".{checkpoint.name}.trainer"


def stage_spec(checkpoint: Path) -> Path:
    """The JSON spec a stage's child process(es) train from, beside the stage's output folder."""
    return checkpoint.parent / f".{checkpoint.name}.spec.json"


@dataclass(frozen=True)
class RunPaths:
    """Every file of a run folder, so no step hard-codes another's layout."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def lineage(self) -> Path:
        return self.root / "lineage.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def tokenizer_inputs(self) -> Path:
        """What the run's from-scratch tokenizer was trained on (corpora, hashes, vocab size)."""
        return self.tokenizer / "valuetrace_inputs.json"

    def checkpoint(self, stage: str) -> Path:
        return self.root / "checkpoints" / stage

    def activations(self, dataset: str, stage: str) -> Path:
        return self.root / "activations" / dataset / f"{stage}.h5"

    def probes(self, dataset: str, stage: str) -> Path:
        return self.root / "probes" / dataset / f"{stage}.h5"

    def surface(self, dataset: str) -> Path:
        """The probe set's surface baselines and each stage's gain over them (a JSON record)."""
        return self.root / "probes" / dataset / "surface_baselines.json"

    def behaviour(self, stage: str) -> Path:
        return self.root / "behaviour" / f"{stage}.json"

    def anima(self, stage: str) -> Path:
        """A stage's ANIMA files: cached answers, offline-judge verdicts, Inspect logs."""
        return self.root / "anima" / stage

    def anima_answers(self, stage: str) -> Path:
        """A stage's cached ANIMA answers with their generation settings (a JSON record)."""
        return self.anima(stage) / "answers.json"

    def anima_judged(self, stage: str) -> Path:
        """The offline judge's per-dimension verdicts on a stage's cached answers."""
        return self.anima(stage) / "judged.json"

    def anima_activations(self, stage: str) -> Path:
        """The pooled hidden states of a stage's cached ANIMA answers (an activation cache)."""
        return self.anima(stage) / "activations.h5"

    def anima_inspect(self, stage: str) -> Path:
        """The folder of the Inspect `.eval` logs that grade a stage's cached answers."""
        return self.anima(stage) / "inspect"

    @property
    def anima_scores(self) -> Path:
        """ANIMA scores of every stage, paired changes and the judge's agreement (a record)."""
        return self.root / "anima" / "scores.json"

    @property
    def anima_projection(self) -> Path:
        """Each stage's answers projected on the compassion direction against their judged
        score (`valuetrace.analysis.anima.projection`, written by `valuetrace analyze`)."""
        return self.root / "analysis" / "anima_projection.json"

    @property
    def exports(self) -> Path:
        """Parquet tables and control vectors written by `valuetrace export`."""
        return self.root / "exports"

    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    @property
    def findings(self) -> Path:
        """The analysis record (`valuetrace.analysis.findings.Findings`) the report reads."""
        return self.root / "analysis" / "findings.json"

    def table(self, name: str) -> Path:
        """A long-format CSV the analysis writes for other tools (probes, comparisons, …)."""
        return self.root / "analysis" / f"{name}.csv"

    @property
    def summary(self) -> Path:
        return self.root / "summary.txt"

    @property
    def causal(self) -> Path:
        return self.root / "analysis" / "causal.json"

    @property
    def transplant(self) -> Path:
        """Each pair's causal transplant (`valuetrace.analysis.transplant.TransplantRecord`)."""
        return self.root / "analysis" / "transplant.json"

    @property
    def concept_sources(self) -> Path:
        """The multi-source concept section
        (`valuetrace.analysis.concept_sources.ConceptSourcesRecord`)."""
        return self.root / "analysis" / "concept_sources.json"

    @property
    def causal_figure(self) -> Path:
        return self.figure("causal_dose_response")

    @property
    def trajectories(self) -> Path:
        """Each trained stage's trajectory (checkpoints along its run) compared with its parent."""
        return self.root / "analysis" / "trajectories.json"

    @property
    def calibration(self) -> Path:
        """The known-answer sensitivity table (counter-value and neutral arm per dose)."""
        return self.root / "analysis" / "calibration.json"

    @property
    def figures(self) -> Path:
        return self.root / "analysis" / "figures"

    def figure(self, name: str) -> Path:
        """A figure the analysis draws (a PNG named after what it shows)."""
        return self.figures / f"{name}.png"

    @property
    def behaviour_set(self) -> str:
        """The name under which the behaviour eval items' activations are cached beside the
        probe sets (`activations(behaviour_set, stage)`); no probe set may take it."""
        return "behaviour_items"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def log(self) -> Path:
        """The full log of every command run on this folder (the console shows less)."""
        return self.root / "log.txt"

    @property
    def timings(self) -> Path:
        """Wall times per step and stage: they differ by nature, so no result file holds them."""
        return self.root / "timings.json"

    @property
    def environment(self) -> Path:
        """Python, torch, BLAS, threads and CPU each step ran on, to explain cross-machine drift."""
        return self.root / "environment.json"

    def stage_outputs(self, stage: str) -> list[Path]:
        """Every file derived from one stage's checkpoint (caches, probes, behaviour scores)."""
        return [
            *self.root.glob(f"activations/*/{stage}.h5"),
            *self.root.glob(f"probes/*/{stage}.h5"),
            self.behaviour(stage),
            self.anima(stage),
        ]

    @property
    def cross_stage_outputs(self) -> list[Path]:
        """Files that compare stages, stale as soon as any one stage changes."""
        surface = sorted(self.root.glob("probes/*/surface_baselines.json"))
        outputs = [*surface, self.analysis, self.report, self.summary, self.exports]
        return [*outputs, self.anima_scores]

    def stored(self, path: str | Path) -> str:
        """`path` as this folder stores it (see `stored_path`)."""
        return stored_path(path, self.root)

    def resolved(self, stored: str) -> str:
        """A stored path made usable from any cwd (see `resolved_path`)."""
        return resolved_path(stored, self.root)
