"""The `python -m valuetrace.activations` command line: bad requests end in one line, exit 2."""

from __future__ import annotations

from valuetrace.activations.__main__ import main

from tests.activations.test_resume_kill import write_probe_set


def test_a_bad_request_is_one_error_line_and_exit_2(tmp_path, tiny_checkpoint, capsys):
    examples = write_probe_set(tmp_path / "probe.jsonl", 8)
    out = tmp_path / "acts.h5"
    argv = ["--checkpoint", str(tiny_checkpoint), "--examples", str(examples), "--out", str(out)]
    assert main([*argv, "--layers", "9"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines() == [
        "python -m valuetrace.activations: error: layer(s) [9] do not exist (`extract.layers` in "
        "the config, `--layers` on the command line): this model has 2 blocks, so layers are 0 "
        "(embeddings) to 2."
    ]
    assert not out.exists()
    assert main([*argv, "--examples", str(tmp_path / "none.jsonl")]) == 2
    assert capsys.readouterr().err.startswith(
        f"python -m valuetrace.activations: error: probe set {tmp_path / 'none.jsonl'} does not "
        "exist"
    )
