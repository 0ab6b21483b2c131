"""Step `prepare`: create the run folder (refusing one that holds another run), write its data.

The folder's `config.yaml` is the validated config as run. Its `run_dir` is `${config_dir}`
(the folder holding the file) and any path inside the folder is written relative to it, so the
folder can be moved or copied and `valuetrace STEP --run-dir NEW` still reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from valuetrace.config import (
    RunConfig,
    check_model_layers,
    config_to_dict,
)
from valuetrace.errors import ConfigError

HERE = "${config_dir}"  # load_config's token for the folder that holds the config file


def stored_config(config: RunConfig) -> dict[str, Any]:
    """The config as the run folder stores it: `run_dir` is the file's own folder, and strings
    naming a path inside the folder are relative to it (`${config_dir}/...`)."""
    root = str(config.paths.root.resolve())

    def relocate(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: relocate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [relocate(v) for v in value]
        if isinstance(value, str) and (value == root or value.startswith(root + "/")):
            return HERE + value[len(root) :]
        return value

    return {**relocate(config_to_dict(config)), "run_dir": HERE}


def config_changes(old: Any, new: Any, where: str = "") -> list[str]:
    """Readable differences between two plain configs (`stages[midtrain].learning_rate: 0.001
    -> 0.0005`); list items with a `name` are matched by name."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            change
            for key in [*old, *(k for k in new if k not in old)]
            for change in config_changes(
                old.get(key), new.get(key), f"{where}.{key}" if where else str(key)
            )
        ]
    named = (
        isinstance(old, list)
        and isinstance(new, list)
        and all(isinstance(v, dict) and "name" in v for v in [*old, *new])
    )
    if named:
        olds, news = {v["name"]: v for v in old}, {v["name"]: v for v in new}
        order = [f"{where}: order {list(olds)} -> {list(news)}"] if list(olds) != list(news) else []
        return order + [
            change
            for name in [*olds, *(n for n in news if n not in olds)]
            for change in config_changes(olds.get(name), news.get(name), f"{where}[{name}]")
        ]
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


def prepare(config: RunConfig, *, overwrite: bool = False) -> None:
    """Create the run folder, refusing one that holds a different run; write demo data.

    The configured layer indices are checked against the model's depth first, so a bad index
    leaves nothing behind.

    Raises:
        ConfigError: a layer index is beyond the model, or the folder's config.yaml differs from
            `config` and `overwrite` is false (the changed fields are named).
    """
    check_model_layers(config)
    paths = config.paths
    paths.root.mkdir(parents=True, exist_ok=True)
    wanted = stored_config(config)
    if paths.config.is_file() and not overwrite:
        changes = config_changes(yaml.safe_load(paths.config.read_text()) or {}, wanted)
        changes = [c for c in changes if not c.startswith("run_dir:")]
        if changes:
            shown = "; ".join(changes[:8]) + (f"; … ({len(changes)} in all)" * (len(changes) > 8))
            raise ConfigError(
                f"{paths.root} already holds a run with a different config ({shown}). Nothing "
                "was changed; choose another --run-dir, or pass --overwrite to rerun in this "
                "folder (changed stages and everything downstream of them are redone)."
            )
    paths.config.write_text(yaml.safe_dump(wanted, sort_keys=False))
    if config.demo_data:
        from valuetrace.corpora.demo_data import write_demo_data

        write_demo_data(paths.data, seed=config.seed)
    if config.real_data_dir:
        from valuetrace.corpora.real_data import write_real_data

        write_real_data(
            Path(config.real_data_dir), paths.data, seed=config.seed, sizes=config.real_data_sizes
        )
        if config.known_answer_documents:
            from valuetrace.corpora.real_known_answer import write_known_answer_data

            write_known_answer_data(
                Path(config.real_data_dir),
                paths.data,
                seed=config.seed,
                sizes=config.real_data_sizes,
                documents=config.known_answer_documents,
            )
    if config.concept_sources is not None:
        from valuetrace.corpora.concept_data import write_concept_sources  # torch only when needed

        write_concept_sources(config)
