"""The add-on inside the package (`mailtracker addon`) and doctor's word on the add-on Thunderbird has.

The wheel's copy is tested through a built wheel's console script in test_dist.py; here the
editable install's (built from extension/), and doctor against Thunderbird profiles written the
way Thunderbird lays them out (profiles.ini and each profile's extensions.json): a written
layout, since no add-on is installed into a real Thunderbird here.
"""

import json
import sys
import zipfile
from pathlib import Path

from mailtracker import __version__

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))

import build_xpi  # noqa: E402


def write_profile(version=None, active=True) -> Path:
    """A Thunderbird profile under ~/.thunderbird, with the mailtracker add-on of ``version`` (None: without it)."""
    root = Path.home() / ".thunderbird"
    profile = root / "x1y2z3.default-release"
    profile.mkdir(parents=True)
    (root / "profiles.ini").write_text("[General]\nStartWithLastProfile=1\n\n[Profile0]\nName=default-release\n"
                                       "IsRelative=1\nPath=x1y2z3.default-release\nDefault=1\n")
    addons = [{"id": "other@example.org", "version": "9.9", "active": True}]
    if version is not None:
        addons.append({"id": "mailtracker@mailtracker.invalid", "version": version, "active": active})
    (profile / "extensions.json").write_text(json.dumps({"schemaVersion": 36, "addons": addons}))
    return profile


def test_addon_writes_the_xpi_of_this_version(home, tmp_path):
    target = tmp_path / "mt.xpi"
    out = run_cli("addon", "--output", str(target), home=home).stdout
    assert f"Wrote the add-on to {target}" in out
    with zipfile.ZipFile(target) as xpi:
        assert json.loads(xpi.read("manifest.json"))["version"] == __version__
    assert target.read_bytes() == build_xpi.build(tmp_path / "reference").read_bytes()


def test_addon_into_a_folder_takes_the_release_name(home, tmp_path):
    out = run_cli("addon", "--output", str(tmp_path), home=home).stdout
    assert (tmp_path / f"mailtracker-{__version__}.xpi").is_file() and str(tmp_path) in out


def test_addon_to_an_unwritable_place_says_so(home, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_cli("addon", "--output", str(blocker / "mt.xpi"), home=home, check=False)
    assert proc.returncode == 32 and "cannot write the add-on to" in proc.stderr and "Traceback" not in proc.stderr


def test_doctor_says_when_the_add_on_in_thunderbird_differs_from_the_helper(home):
    profile = write_profile("0.0.9")
    run_cli("install-host", home=home)
    proc = run_cli("doctor", home=home, check=False)
    assert proc.returncode == 90
    assert (f"BROKEN  add-on matches the helper: the add-on in {profile} is version 0.0.9, the helper "
            f"{__version__}; run 'mailtracker addon'") in proc.stdout


def test_doctor_is_content_with_the_add_on_of_this_version(home):
    profile = write_profile(__version__)
    run_cli("install-host", home=home)
    out = run_cli("doctor", home=home).stdout
    assert f"ok   add-on matches the helper: version {__version__} in {profile}" in out


def test_doctor_names_a_disabled_add_on(home):
    write_profile(__version__, active=False)
    run_cli("install-host", home=home)
    proc = run_cli("doctor", home=home, check=False)
    assert proc.returncode == 90 and "is disabled: enable it in Add-ons and Themes" in proc.stdout


def test_doctor_says_when_no_profile_has_the_add_on(home):
    write_profile(None)
    run_cli("install-host", home=home)
    proc = run_cli("doctor", home=home, check=False)
    assert proc.returncode == 90
    assert "BROKEN  add-on installed: no Thunderbird profile here has the mailtracker add-on; run 'mailtracker addon'" in proc.stdout


def test_doctor_without_any_thunderbird_profile_says_nothing_of_the_add_on(home):
    run_cli("install-host", home=home)
    out = run_cli("doctor", home=home).stdout
    assert "add-on" not in out
