"""Step `prepare`: create the run folder (refusing one that holds another run), write its data."""

from __future__ import annotations

from pathlib import Path

import yaml

from valuetrace.config import (
    RunConfig,
    check_model_layers,
    config_to_dict,
)
from valuetrace.errors import ConfigError, DataError


def prepare(config: RunConfig, *, overwrite: bool = False) -> None:
    """Create the run folder, refusing one that holds a different run; write demo data.

    The configured layer indices are checked against the model's depth first, so a bad index
    leaves nothing behind.
    """
    check_model_layers(config)
    paths = config.paths
    paths.root.mkdir(parents=True, exist_ok=True)
    as_yaml = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    if paths.config.is_file() and paths.config.read_text() != as_yaml and not overwrite:
        raise DataError(
            f"{paths.root} already holds a run with a different config ({paths.config}). "
            "Nothing was changed; choose another --run-dir, or pass --overwrite to start over "
            "in this folder."
        )
    paths.config.write_text(as_yaml)
    if config.demo_data:
        from valuetrace.demo_data import write_demo_data

        write_demo_data(paths.data, seed=config.seed)
    if config.real_data_dir:
        from valuetrace.real_data import RealDataSizes, write_real_data

        try:
            sizes = RealDataSizes(**config.real_data_sizes)
        except TypeError as err:
            raise ConfigError(
                f"real_data_sizes: {err}; its keys are RealDataSizes' fields (probe_pairs, "
                "control_pairs, behaviour_pairs, compassion, helpfulness, coding, ...)."
            ) from err
        write_real_data(Path(config.real_data_dir), paths.data, seed=config.seed, sizes=sizes)
