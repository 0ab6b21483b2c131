"""Step `export`: a run's tables as Parquet (a Hugging Face dataset, optionally pushed to the
hub or a folder) and directions as llama.cpp control vectors, so others can load the results
without valuetrace. The tables and their schema: `valuetrace.analysis.export_dataset`; the
control vector format: `valuetrace.probing.control_vector`."""

from __future__ import annotations

from valuetrace.analysis.export_dataset import push_dataset, write_dataset
from valuetrace.config import RunConfig
from valuetrace.probing.control_vector import export_control_vector
from valuetrace.training.lineage import Lineage


def export(
    config: RunConfig,
    *,
    to_hub: str | None = None,
    control_vector: str | None = None,
    probe_set: str | None = None,
    kind: str = "mean_diff",
) -> list[str]:
    """`valuetrace export`: the Parquet dataset (pushed to `to_hub` when given) and, for the
    stage `control_vector`, its direction as a llama.cpp control vector; returns what it wrote.

    Raises:
        MissingStepError: the run has no tables, or the stage no probe results.
        ConfigError: the push failed, or the direction kind is unknown.
    """
    paths = config.paths
    stages = Lineage.load(paths.lineage).names() if paths.lineage.is_file() else []
    folder = write_dataset(paths, stages)
    written = [str(folder)]
    if to_hub:
        written.append(push_dataset(folder, to_hub))
    if control_vector:
        name = probe_set or config.probes[0].name
        written.append(str(export_control_vector(paths, control_vector, name, kind)))
    return written
