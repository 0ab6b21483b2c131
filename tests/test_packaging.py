"""The install puts one `valuetrace` namespace into site-packages and nothing generic beside it.

Checked twice: the editable install this suite runs in, and a wheel built from the checkout and
installed (without dependencies) into a fresh virtual environment. Both are imported from a
folder holding `analysis.py` and `training.py`, as research code often does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("training", "activations", "probing", "analysis")
PROBE = """
import importlib.util, sys
import valuetrace.steps.analyze, valuetrace.steps.train, valuetrace.cli
from valuetrace import analysis, training
import analysis as local_analysis, training as local_training
assert local_analysis.__file__.endswith("analysis.py"), local_analysis.__file__
assert local_training.__file__.endswith("training.py"), local_training.__file__
for name in ("training", "activations", "probing", "analysis"):
    spec = importlib.util.find_spec(f"valuetrace.{name}")
    assert spec is not None and spec.origin.endswith("__init__.py"), (name, spec)
for name in ("probing", "activations"):
    assert importlib.util.find_spec(name) is None, f"top-level {name} is importable"
print(valuetrace.steps.analyze.__file__)
"""


def _user_folder(tmp_path: Path) -> Path:
    """A research folder whose own modules share names with valuetrace's subpackages."""
    folder = tmp_path / "research"
    folder.mkdir()
    (folder / "analysis.py").write_text("RESULT = 1\n")
    (folder / "training.py").write_text("RESULT = 2\n")
    return folder


def _run(python: str | Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(python), "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_editable_install_imports_one_namespace(tmp_path: Path) -> None:
    """The editable install resolves every subpackage under valuetrace, from any folder."""
    where = _run(sys.executable, _user_folder(tmp_path))
    assert Path(where).resolve().is_relative_to(ROOT)


@pytest.mark.slow
def test_built_wheel_installs_one_namespace(tmp_path: Path) -> None:
    """A wheel of the checkout holds only valuetrace/ and imports cleanly in a fresh venv."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("valuetrace-*.whl")
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"valuetrace"}, tops
    for folder, package in [("valuetrace", "valuetrace")] + [
        (name, f"valuetrace/{name}") for name in SUBPACKAGES
    ]:
        for init in (ROOT / folder).rglob("__init__.py"):
            inside = init.relative_to(ROOT / folder).as_posix()
            assert f"{package}/{inside}" in names, f"{init} is not packaged: list it in pyproject"
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    # The fresh venv borrows this environment's dependencies (torch …) through a .pth line;
    # lines of a .pth add a folder to sys.path without running that folder's own .pth files,
    # so this suite's editable valuetrace stays invisible there.
    purelib = sysconfig.get_paths()["purelib"]
    (site,) = (env_dir / "lib").glob("python3*/site-packages")
    (site / "zz_dependencies.pth").write_text(purelib + "\n")
    where = _run(python, _user_folder(tmp_path))
    assert Path(where).resolve().is_relative_to(site.resolve()), where
    for name in SUBPACKAGES:
        assert (site / "valuetrace" / name / "__init__.py").is_file()
        assert not (site / name).exists()
