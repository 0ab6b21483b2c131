"""A per-layer direction as a llama.cpp control vector (GGUF), the file `repeng` writes and
`llama.cpp --control-vector` / `--control-vector-scaled` read.

Format (llama.cpp `common_control_vector_load`, and `repeng.ControlVector.export_gguf`):
GGUF with `general.architecture` = `"controlvector"`, `controlvector.model_hint` (the model's
architecture, e.g. `llama`), `controlvector.layer_count`, and one 1-D float32 tensor
`direction.{il}` of length `d_model` per steered layer. llama.cpp adds `direction.{il}` (times
the user's strength) to the output of decoder block `il`, counted from 0, and refuses
`direction.0`.

Layer convention: a valuetrace direction is indexed by hidden state (0 = the embeddings, L =
the output of block L - 1), so hidden state L is written as `direction.{L - 1}`. Hidden states
0 and 1 have no llama.cpp slot (the embeddings are not steered and block 0 cannot be named) and
are left out, as are layers where the direction is undefined; the metadata lists what was left
out. Scaling: each row is the unit direction times `scale` (the `valuetrace.scale` metadata),
so llama.cpp's strength s adds s x scale along the unit direction. Extra metadata:
`valuetrace.model`, `valuetrace.kind`, `valuetrace.layer_convention`, `valuetrace.skipped` and
each provenance entry as `valuetrace.provenance.<key>`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from jaxtyping import Float

from valuetrace.errors import ConfigError, DataError, MissingStepError
from valuetrace.paths import RunPaths
from valuetrace.probing.direction import Direction
from valuetrace.probing.store import load_results
from valuetrace.training.lineage import Lineage

ARCH = "controlvector"
LAYER_CONVENTION = (
    "direction.{il} = valuetrace hidden state il + 1 (the output of decoder block il, 0-based, "
    "where llama.cpp adds it); hidden states 0 and 1 are not exported"
)


def write_control_vector(
    direction: Direction,
    path: str | Path,
    *,
    model: str,
    model_hint: str = "llama",
    scale: float = 1.0,
) -> Path:
    """Write `direction` as a llama.cpp control vector at `path` (see module doc).

    Raises:
        DataError: `scale` is not a finite non-zero number, or no layer can be exported.
    """
    import gguf

    if not np.isfinite(scale) or scale == 0:
        raise DataError(f"scale is {scale}; give a finite, non-zero scale (1.0: unit rows).")
    rows = {
        layer - 1: (scale * direction.vectors[i]).astype(np.float32)
        for i, layer in enumerate(direction.layers)
        if layer >= 2 and layer not in direction.undefined
    }
    skipped = sorted(set(direction.layers) - {il + 1 for il in rows})
    if not rows:
        raise DataError(
            f"direction layers {direction.layers} hold no exportable layer (hidden state >= 2 "
            "with a defined direction); extract deeper layers."
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), ARCH)
    writer.add_string(f"{ARCH}.model_hint", model_hint)
    writer.add_uint32(f"{ARCH}.layer_count", len(rows))
    writer.add_string("valuetrace.model", model)
    writer.add_string("valuetrace.kind", direction.kind)
    writer.add_string("valuetrace.layer_convention", LAYER_CONVENTION)
    writer.add_float32("valuetrace.scale", float(scale))
    writer.add_string("valuetrace.skipped", json.dumps(skipped))
    for key, value in direction.provenance.items():
        writer.add_string(f"valuetrace.provenance.{key}", str(value))
    for il in sorted(rows):
        writer.add_tensor(f"direction.{il}", rows[il])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)
    return path


def read_control_vector(path: str | Path) -> dict[int, Float[np.ndarray, " d"]]:
    """The `direction.{il}` rows of a control vector file, by llama.cpp layer `il`.

    Raises:
        DataError: the file is not a GGUF control vector.
    """
    import gguf

    reader = gguf.GGUFReader(str(path))
    arch = reader.get_field("general.architecture")
    if arch is None or arch.contents() != ARCH:
        raise DataError(f"{path} is not a GGUF control vector (general.architecture != {ARCH}).")
    return {
        int(t.name.split(".", 1)[1]): np.asarray(t.data, dtype=np.float32).reshape(-1)
        for t in reader.tensors
        if t.name.startswith("direction.")
    }


def export_control_vector(
    paths: RunPaths, stage: str, probe_set: str, kind: str = "mean_diff"
) -> Path:
    """The run's direction of `probe_set` at `stage` (the mean difference or the probe's) as a
    llama.cpp control vector under `exports/control_vectors/`; returns its path. The model hint
    is the stage checkpoint's `model_type` (`llama` when its config.json is not at hand).

    Raises:
        MissingStepError: the stage has no probe results (run `valuetrace probe`).
        ConfigError: `kind` is not probe or mean_diff.
    """
    if kind not in ("probe", "mean_diff"):
        raise ConfigError(f"direction kind {kind!r}: use probe or mean_diff.")
    path = paths.probes(probe_set, stage)
    if not path.is_file():
        raise MissingStepError(f"no probe results at {path}; run `valuetrace probe` first.")
    results = load_results(path)
    direction = results.mean_direction if kind == "mean_diff" else results.probe_direction
    checkpoint = Lineage.load(paths.lineage).get(stage).checkpoint
    hint = "llama"
    config_json = Path(paths.resolved(checkpoint)) / "config.json"
    if config_json.is_file():
        hint = json.loads(config_json.read_text()).get("model_type", hint)
    return write_control_vector(
        direction,
        paths.exports / "control_vectors" / f"{probe_set}_{stage}_{kind}.gguf",
        model=checkpoint,
        model_hint=hint,
    )
