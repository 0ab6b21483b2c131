"""The HDF5 cache: round trip, resume, provenance refusal, damaged and foreign files."""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest

from tests.activations.hold import held_open
from valuetrace.activations import store
from valuetrace.activations.store import Examples, read_activations
from valuetrace.activations.writer import CacheWriter
from valuetrace.errors import CacheError, ConfigError, DataError, ValuetraceError

PROV = {
    "model_hash": "m1",
    "tokenizer_hash": "t1",
    "dataset_hash": "d1",
    "pooling": "mean",
    "dtype": "float32",
    "max_length": 64,
    "prompt_format": "plain",
}
N, D, LAYERS = 10, 6, [0, 1, 2]
EXAMPLES = Examples([f"e{i}" for i in range(N)], np.arange(N) % 2, [f"g{i // 2}" for i in range(N)])
BLOCK = np.random.default_rng(0).normal(size=(3, N, D)).astype(np.float32)


def _open(path, **kw) -> CacheWriter:
    return CacheWriter.open(
        path,
        provenance=kw.pop("prov", PROV),
        layers=kw.pop("layers", LAYERS),
        d_model=D,
        examples=EXAMPLES,
        **kw,
    )


def test_round_trip_with_metadata_and_provenance(tmp_path):
    writer = _open(tmp_path / "c.h5")
    writer.write(0, BLOCK)
    writer.finish()
    cache = read_activations(tmp_path / "c.h5")
    np.testing.assert_array_equal(cache.acts, BLOCK)
    assert cache.ids == list(EXAMPLES.ids) and cache.groups == list(EXAMPLES.groups)
    assert cache.attrs["model_hash"] == "m1" and cache.attrs["complete"]
    np.testing.assert_array_equal(read_activations(tmp_path / "c.h5", layers=[2]).acts[0], BLOCK[2])
    with h5py.File(tmp_path / "c.h5") as fh:  # plain h5py reads it
        assert fh["hidden"].chunks[0] == 1


def test_resume_continues_from_rows_done_and_matches_a_single_run(tmp_path):
    writer = _open(tmp_path / "r.h5")
    writer.write(0, BLOCK[:, :4])
    writer.close()  # as if the process died here
    with pytest.raises(ValuetraceError, match="half-written \\(4 of 10 rows\\)"):
        read_activations(tmp_path / "r.h5")
    again = _open(tmp_path / "r.h5")
    assert again.rows_done == 4 and not again.complete
    with pytest.raises(ValuetraceError, match="block starts at row 0"):
        again.write(0, BLOCK)
    again.write(4, BLOCK[:, 4:])
    again.finish()
    np.testing.assert_array_equal(read_activations(tmp_path / "r.h5").acts, BLOCK)


def test_other_provenance_is_refused_naming_the_field_and_kept(tmp_path):
    writer = _open(tmp_path / "p.h5")
    writer.write(0, BLOCK)
    writer.finish()
    before = (tmp_path / "p.h5").read_bytes()
    with pytest.raises(ValuetraceError, match="pooling: cache has 'mean', request has 'last'"):
        _open(tmp_path / "p.h5", prov={**PROV, "pooling": "last"})
    with pytest.raises(ValuetraceError, match="layers"):
        _open(tmp_path / "p.h5", layers=[0, 1])
    assert (tmp_path / "p.h5").read_bytes() == before
    replaced = _open(tmp_path / "p.h5", prov={**PROV, "pooling": "last"}, overwrite=True)
    assert replaced.rows_done == 0
    replaced.close()


def test_foreign_and_truncated_files_are_refused_untouched(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as fh:
        fh["x"] = np.zeros(3)
    with pytest.raises(ValuetraceError, match="not a valuetrace activation cache"):
        _open(foreign)
    writer = _open(tmp_path / "t.h5")
    writer.write(0, BLOCK)
    writer.finish()
    data = (tmp_path / "t.h5").read_bytes()
    (tmp_path / "t.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValuetraceError, match="truncated or damaged"):
        read_activations(tmp_path / "t.h5")
    assert (tmp_path / "t.h5").stat().st_size == len(data) // 3


def test_missing_layer_and_missing_file_errors(tmp_path):
    with pytest.raises(ValuetraceError, match="run `valuetrace extract` first"):
        read_activations(tmp_path / "none.h5")
    writer = _open(tmp_path / "l.h5")
    writer.write(0, BLOCK)
    writer.finish()
    with pytest.raises(ValuetraceError, match=r"layers \[7\] are not in .* \[0, 1, 2\]\)"):
        read_activations(tmp_path / "l.h5", layers=[7])


def test_a_full_disk_is_refused_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(store.shutil, "disk_usage", lambda _p: type("U", (), {"free": 100})())
    with pytest.raises(ValuetraceError, match=r"needs .* MB but only"):
        _open(tmp_path / "full.h5")
    assert not (tmp_path / "full.h5").exists()


def test_the_needed_space_is_said_before_writing(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="valuetrace.activations.store"):
        _open(tmp_path / "say.h5").close()
    assert "say.h5 will need 0.0 MB" in caplog.text


def test_a_cache_without_labels_keeps_scores_and_refuses_label_reads(tmp_path):
    scores = np.linspace(0.0, 1.0, N)
    unlabelled = Examples(EXAMPLES.ids, None, EXAMPLES.groups, scores)
    writer = CacheWriter.open(
        tmp_path / "u.h5", provenance=PROV, layers=LAYERS, d_model=D, examples=unlabelled
    )
    writer.write(0, BLOCK)
    writer.finish()
    cache = read_activations(tmp_path / "u.h5")
    np.testing.assert_array_equal(cache.scores, scores)
    assert not cache.has_labels and cache.attrs["schema_version"] == store.SCHEMA_VERSION == 3
    with pytest.raises(DataError, match="holds no 0/1 labels"):
        cache.labels  # noqa: B018 (the property read is the check)
    with h5py.File(tmp_path / "u.h5") as fh:
        assert "label" not in fh and fh["score"].dtype == np.float64


def test_a_schema_version_1_file_reads_as_before(tmp_path):
    writer = _open(tmp_path / "v1.h5")
    writer.write(0, BLOCK)
    writer.finish()
    with h5py.File(tmp_path / "v1.h5", "r+") as fh:  # version 1: /label always, no /score
        fh.attrs["schema_version"] = 1
    cache = read_activations(tmp_path / "v1.h5")
    np.testing.assert_array_equal(cache.labels, EXAMPLES.labels)
    assert cache.scores is None and cache.attrs["schema_version"] == 1


def test_values_beyond_float16_are_refused_at_write_time_naming_layer_and_fix(tmp_path):
    writer = _open(tmp_path / "h.h5", prov={**PROV, "dtype": "float16"})
    writer.write(0, BLOCK[:, :4])
    block = BLOCK[:, 4:].copy()
    block[1, 2, 3] = 7e4  # layer 1, row 6: float16 stops at 65504
    with pytest.raises(ConfigError, match=r"layers \[1\], rows \[6\] reach 7e\+04.*float32"):
        writer.write(4, block)
    assert writer.rows_done == 4  # nothing of the block was recorded
    block[1, 2, 3] = np.nan  # the model itself produced a NaN: another fault, another fix
    with pytest.raises(DataError, match=r"NaN or inf activations at layers \[1\], rows \[6\]"):
        writer.write(4, block)
    block[1, 2, 3] = 6e4
    writer.write(4, block)
    writer.finish()
    acts = read_activations(tmp_path / "h.h5").acts
    assert np.isfinite(acts).all() and acts[1, 6, 3] == np.float16(6e4)


@pytest.mark.parametrize("holder", ["r+", "r"])
def test_a_cache_open_in_another_process_is_locked_not_damaged(tmp_path, holder):
    writer = _open(tmp_path / "busy.h5")
    writer.write(0, BLOCK[:, :4])
    writer.close()
    before = (tmp_path / "busy.h5").read_bytes()
    # a writer locks out every other opener; a reader locks out writers
    with held_open(tmp_path / "busy.h5", holder):
        attempts = [lambda: _open(tmp_path / "busy.h5")]  # resume, as a second extraction would
        if holder == "r+":
            attempts.append(lambda: read_activations(tmp_path / "busy.h5"))
        for attempt in attempts:
            with pytest.raises(CacheError, match="is locked: another process") as err:
                attempt()
            assert "HDF5_USE_FILE_LOCKING" in str(err.value)
            assert "not damaged" in str(err.value) and "delete" not in str(err.value)
    assert (tmp_path / "busy.h5").read_bytes() == before
    again = _open(tmp_path / "busy.h5")  # the holder is gone: it resumes
    assert again.rows_done == 4
    again.close()


def test_a_filesystem_without_locks_is_named_with_the_environment_fix(tmp_path):
    err = OSError(
        37,
        "Unable to synchronously open file (unable to lock file, errno = 37, error message = "
        "'No locks available')",
    )
    message = str(store.unopenable(tmp_path / "c.h5", err, "delete it."))
    assert "does not support file locks" in message and "HDF5_USE_FILE_LOCKING=FALSE" in message
    assert "delete" not in message


def _row_offset(path, layer_index: int, row: int) -> int:
    """The byte offset in the file of `hidden[layer_index, row, 0]` (chunked, uncompressed)."""
    with h5py.File(path) as fh:
        hidden = fh["hidden"]
        chunk_rows = hidden.chunks[1]
        info = hidden.id.get_chunk_info_by_coord((layer_index, row // chunk_rows * chunk_rows, 0))
        return info.byte_offset + (row % chunk_rows) * D * hidden.dtype.itemsize


def test_bytes_overwritten_inside_a_cache_are_caught_naming_file_layer_and_rows(tmp_path):
    """Issue 20: bytes changed in place (not truncated) were read back silently; each row has
    a CRC-32 written with its block and checked on every read."""
    path = tmp_path / "c.h5"
    writer = _open(path)
    writer.write(0, BLOCK)
    writer.finish()
    with h5py.File(path) as fh:
        assert fh.attrs["schema_version"] == 3 and fh["checksum"].shape == (3, N)
    offset = _row_offset(path, 1, 7)
    with open(path, "r+b") as fh:
        fh.seek(offset + 4)
        fh.write(b"\x00\x00\x80\x7f")  # one float of layer 1, row 7
    with pytest.raises(CacheError, match=rf"{path} is damaged: layer 1, rows \[7\]"):
        read_activations(path)
    read_activations(path, layers=[0, 2])  # the other layers are intact and readable


def test_a_changed_label_is_caught_by_the_meta_checksum(tmp_path):
    path = tmp_path / "c.h5"
    writer = _open(path)
    writer.write(0, BLOCK)
    writer.finish()
    with h5py.File(path, "r+") as fh:
        fh["label"][3] = 1 - fh["label"][3]
    with pytest.raises(CacheError, match="labels, scores or groups no longer hold"):
        read_activations(path)


def test_a_cache_from_before_checksums_still_reads_and_says_so(tmp_path, caplog):
    path = tmp_path / "v2.h5"
    writer = _open(path)
    writer.write(0, BLOCK)
    writer.finish()
    with h5py.File(path, "r+") as fh:  # what a schema 2 file looks like
        del fh["checksum"]
        del fh.attrs["meta_checksum"]
        fh.attrs["schema_version"] = 2
    with caplog.at_level(logging.WARNING, logger="valuetrace.activations.store"):
        cache = read_activations(path)
    np.testing.assert_array_equal(cache.acts, BLOCK)
    assert "has no checksums (schema_version 2" in caplog.text
