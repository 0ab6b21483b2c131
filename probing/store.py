"""Save and load ``ProbeResults`` as one HDF5 file, written atomically.

Why: probe runs feed the analysis and the report long after they ran, so everything needed to
re-score, compare and plot them (metrics, out-of-fold scores, the probe with its
standardisation, both directions, config, provenance) goes in one self-describing file. It is
written to a temporary file beside the target and moved into place, so a crash never leaves a
half-written file under the real name.

Layout (``format_version`` 4; float64 unless noted; ``L`` layers, ``N`` examples, ``D`` width):

- root attributes: ``format`` = ``"valuetrace.probe_results"``, ``format_version`` = 4,
  ``config`` (JSON of ``valuetrace.config.ProbingConfig``), ``seed`` (int), ``provenance``
  (JSON object of strings), ``undefined`` (JSON object: model layer index → why that layer
  could not be probed; its per-layer values are NaN);
- ``layers`` int64 ``[L]``, ``labels`` int64 ``[N]``, ``folds`` int64 ``[N]``,
  ``oof_scores`` ``[L, N]``, and with a control task ``control_oof_scores`` ``[L, N]``;
- ``metrics/``: ``accuracy`` ``[L]``, ``accuracy_ci`` ``[L, 2]``, ``auroc``, ``auroc_ci``,
  ``C`` ``[L]``, ``fold_C`` ``[L, K]``, and with a control task ``control_accuracy``,
  ``control_accuracy_ci``, ``selectivity``, ``selectivity_ci``;
- ``probe/``: ``coef``, ``mean``, ``std`` float32 ``[L, D]``, ``intercept`` float32 ``[L]``,
  ``C`` ``[L]``, attribute ``undefined`` (JSON, as the root's);
- ``directions/probe/`` and ``directions/mean_diff/``: ``vectors`` float32 ``[L, D]`` (NaN
  rows where undefined), ``layers`` int64 ``[L]``, attributes ``kind``, ``provenance`` (JSON)
  and ``undefined`` (JSON, as the root's).
"""

import json
import os
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np

from valuetrace.activations.store import unopenable
from valuetrace.config import ProbingConfig
from valuetrace.errors import CacheError, MissingStepError
from valuetrace.probing.degenerate import undefined_from_json, undefined_to_json
from valuetrace.probing.direction import Direction
from valuetrace.probing.probe import Probe, ProbeResults
from valuetrace.records import check_version, from_plain

FORMAT = "valuetrace.probe_results"
# 2: config is a ProbingConfig, the seed an attribute; 3: undefined layers; 4: the config's
# surface settings nested (`surface`), where 3 had `surface_margin` (read and upgraded)
FORMAT_VERSION = 4
OLDEST_READ = 3
_METRICS = ("accuracy", "accuracy_ci", "auroc", "auroc_ci", "C", "fold_C")
_CONTROL_METRICS = ("control_accuracy", "control_accuracy_ci", "selectivity", "selectivity_ci")
_PROBE = ("coef", "intercept", "mean", "std", "C")
_DIRECTIONS = {"probe": "probe_direction", "mean_diff": "mean_direction"}


def save_results(
    results: ProbeResults, path: str | Path, provenance: dict[str, str] | None = None
) -> None:
    """Write ``results`` to ``path`` (HDF5) atomically; ``provenance`` adds to the stored one.

    The extra provenance (stage, dataset, model hash …) goes to the results and both directions.
    """
    path = Path(path)
    extra = {k: str(v) for k, v in (provenance or {}).items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["config"] = json.dumps(asdict(results.config))
            f.attrs["seed"] = results.seed
            f.attrs["provenance"] = json.dumps(results.provenance | extra)
            f.attrs["undefined"] = undefined_to_json(results.undefined)
            f["layers"] = np.asarray(results.layers, dtype=np.int64)
            f["labels"] = results.labels
            f["folds"] = results.folds
            f["oof_scores"] = results.oof_scores
            metrics = f.create_group("metrics")
            for name in _METRICS:
                metrics[name] = getattr(results, name)
            if results.control_oof_scores is not None:
                f["control_oof_scores"] = results.control_oof_scores
                for name in _CONTROL_METRICS:
                    metrics[name] = getattr(results, name)
            probe = f.create_group("probe")
            for name in _PROBE:
                probe[name] = getattr(results.probe, name)
            probe.attrs["undefined"] = undefined_to_json(results.probe.undefined)
            for key, attr in _DIRECTIONS.items():
                direction: Direction = getattr(results, attr)
                group = f.create_group(f"directions/{key}")
                group["vectors"] = direction.vectors
                group["layers"] = np.asarray(direction.layers, dtype=np.int64)
                group.attrs["kind"] = direction.kind
                group.attrs["provenance"] = json.dumps(direction.provenance | extra)
                group.attrs["undefined"] = undefined_to_json(direction.undefined)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_results(path: str | Path) -> ProbeResults:
    """Read a file written by ``save_results``.

    Raises ``MissingStepError`` when there is no file, and ``CacheError`` for a foreign, old,
    truncated or locked one (a locked file is named as locked, never as damaged).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingStepError(f"no probe results at {path}; run `valuetrace probe` first")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise unopenable(path, err, "re-run the probes and save them again") from err
    with handle as f:
        if f.attrs.get("format") != FORMAT:
            raise CacheError(
                f"{path} is not a valuetrace probe-results file (format "
                f"{f.attrs.get('format')!r}); pass a file written by save_results"
            )
        version = check_version(
            "probe-results format",
            str(path),
            f.attrs.get("format_version"),
            FORMAT_VERSION,
            OLDEST_READ,
            fix="re-run the probes with this version",
        )
        try:
            return _read(f, version)
        except (KeyError, ValueError) as err:
            raise CacheError(
                f"{path} is incomplete ({err}); re-run the probes and save them again"
            ) from err


def _read(f: h5py.File, version: int) -> ProbeResults:
    """Rebuild the results from an open file whose header was checked."""
    layers = f["layers"][()].tolist()
    metrics = f["metrics"]
    control = "control_oof_scores" in f
    probe = Probe(
        layers=layers,
        undefined=undefined_from_json(f["probe"].attrs["undefined"]),
        **{name: f["probe"][name][()] for name in _PROBE},
    )
    directions = {
        attr: Direction(
            vectors=f[f"directions/{key}/vectors"][()],
            layers=f[f"directions/{key}/layers"][()].tolist(),
            kind=f[f"directions/{key}"].attrs["kind"],
            provenance=json.loads(f[f"directions/{key}"].attrs["provenance"]),
            undefined=undefined_from_json(f[f"directions/{key}"].attrs["undefined"]),
        )
        for key, attr in _DIRECTIONS.items()
    }
    plain = json.loads(f.attrs["config"])
    if version < 4 and "surface_margin" in plain:
        plain["surface"] = {"margin": plain.pop("surface_margin")}
    config = from_plain(ProbingConfig, plain, "config", error=CacheError)
    return ProbeResults(
        layers=layers,
        labels=f["labels"][()],
        folds=f["folds"][()],
        oof_scores=f["oof_scores"][()],
        control_oof_scores=f["control_oof_scores"][()] if control else None,
        **{name: metrics[name][()] for name in _METRICS},
        **{name: metrics[name][()] if control else None for name in _CONTROL_METRICS},
        probe=probe,
        config=config,
        seed=int(f.attrs["seed"]),
        provenance=json.loads(f.attrs["provenance"]),
        undefined=undefined_from_json(f.attrs["undefined"]),
        **directions,
    )
