"""The release artefacts as `make dist` builds them: wheel, sdist and .xpi with one
version, twine's checks, an sdist whose own tests run, the files setup-server needs
inside the wheel, and the add-on's manifest as addons.thunderbird.net reviews it."""

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from mailtracker import __version__

ROOT = Path(__file__).resolve().parents[1]
UPDATE_URL = "https://t.example.org/mailtracker/updates.json"
sys.path.insert(0, str(ROOT / "packaging"))

import build_dist  # noqa: E402


@pytest.fixture(scope="module")
def dist_run(tmp_path_factory):
    """What `make dist UPDATE_URL=…` writes and prints, built once for the module."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, str(ROOT / "packaging" / "build_dist.py"), "--out", str(out),
                           "--update-url", UPDATE_URL], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


@pytest.fixture(scope="module")
def dist(dist_run):
    return dist_run[0]


def test_make_dist_prints_each_files_sha256_and_writes_sha256sums(dist_run):
    """The README's install checks the wheel by the SHA-256 `make dist` prints; sha256sum -c agrees."""
    import hashlib

    out, printed = dist_run
    artefacts = sorted(path.name for path in out.glob("mailtracker-*"))
    assert len(artefacts) == 3
    for name in artefacts:
        line = f"{hashlib.sha256((out / name).read_bytes()).hexdigest()}  {name}"
        assert line in printed.splitlines(), (line, printed)
        assert line in (out / "SHA256SUMS").read_text().splitlines()
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 3, check.stdout + check.stderr


def test_the_three_artefacts_carry_one_version(dist):
    """Wheel, sdist and .xpi are named for __version__ and say so inside (METADATA, PKG-INFO, manifest)."""
    names = sorted(p.name for p in dist.iterdir())
    assert names == ["SHA256SUMS", f"mailtracker-{__version__}-py3-none-any.whl", f"mailtracker-{__version__}.tar.gz",
                     f"mailtracker-{__version__}.xpi", "updates.json"]
    assert set(build_dist.artefact_versions(dist).values()) == {__version__}
    assert json.loads((ROOT / "extension" / "package.json").read_text())["version"] == __version__


def test_twine_check_passes(dist):
    """twine check --strict: the metadata and the README render for PyPI."""
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.glob("*.whl")),
                           *map(str, dist.glob("*.tar.gz"))], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.count("PASSED") == 2, proc.stdout + proc.stderr


def test_the_wheel_holds_the_server_files_and_the_license(dist):
    """setup-server's unit and Caddyfile travel in the wheel (share/mailtracker), with LICENSE and tomli-w."""
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"mailtracker-{__version__}.dist-info/METADATA").decode()
        unit = archive.read(f"mailtracker-{__version__}.data/data/share/mailtracker/systemd/mailtracker.service")
    assert f"mailtracker-{__version__}.data/data/share/mailtracker/caddy/Caddyfile" in names
    assert unit == (ROOT / "packaging/systemd/mailtracker.service").read_bytes()
    assert f"mailtracker-{__version__}.dist-info/licenses/LICENSE" in names
    assert "mailtracker/server/setup.py" in names and "License: MIT" in metadata
    assert "Requires-Dist: tomli-w" in metadata
    # The network origins offline from the first run, and the table each server worker reads.
    assert {"mailtracker/core/data/origins-snapshot.csv.gz", "mailtracker/core/data/origins-table.bin"} <= set(names)


def test_the_sdist_holds_tests_data_packaging_and_the_add_on(dist):
    """Everything a release needs is in the sdist; node_modules and caches are not."""
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("LICENSE", "CHANGELOG.md", "Makefile", ".ci/run", "tests/conftest.py", "tests/tools.py",
                   "tests/data/hits_corpus.csv", "tests/e2e/conftest.py", "packaging/systemd/mailtracker.service",
                   "packaging/caddy/Caddyfile", "packaging/build_xpi.py", "packaging/ci-packages.txt",
                   "extension/manifest.json", "extension/icons/mailtracker-64.png", "extension/package-lock.json",
                   "docs/commands.md", "docs/protocol.md"):  # the tests read the doc tables
        assert needed in names, needed
    assert not [name for name in names if "node_modules" in name or "__pycache__" in name or name.endswith(".pyc")]


def test_the_sdists_own_tests_run(dist, tmp_path):
    """Unpacked, the sdist's tests import its own package and pass (conftest, data and packaging present)."""
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    unpacked = tmp_path / f"mailtracker-{__version__}"
    env = {**os.environ, "PYTHONPATH": str(unpacked / "helper")}
    where = subprocess.run([sys.executable, "-c", "import mailtracker; print(mailtracker.__file__)"],
                           cwd=unpacked, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(unpacked))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_config.py", "tests/test_tokens.py", "tests/test_setup_server.py",
                           "-k", "not caddy and not verifies"],
                          cwd=unpacked, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


def test_the_xpi_manifest_has_what_review_asks_for(dist):
    """Data-collection declaration, PNG icons at the sizes listed, and the update_url given to make dist."""
    (xpi,) = dist.glob("*.xpi")
    with zipfile.ZipFile(xpi) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        gecko = manifest["browser_specific_settings"]["gecko"]
        assert gecko["data_collection_permissions"] == {"required": ["none"]}
        assert gecko["update_url"] == UPDATE_URL
        assert manifest["icons"], "no icons"
        for size, path in manifest["icons"].items():
            assert path.endswith(".png"), path
            with archive.open(path) as handle:
                assert Image.open(handle).size == (int(size), int(size)), path
    source = json.loads((ROOT / "extension" / "manifest.json").read_text())
    assert "update_url" not in source["browser_specific_settings"]["gecko"]  # only where a user asked for it


def test_updates_json_offers_this_version_beside_the_update_url(dist):
    """dist/updates.json: this version, its .xpi in the folder of update_url, the same minimum Thunderbird."""
    updates = json.loads((dist / "updates.json").read_text())
    (entry,) = updates["addons"]["mailtracker@mailtracker.invalid"]["updates"]
    minimum = json.loads((ROOT / "extension" / "manifest.json").read_text())["browser_specific_settings"]["gecko"][
        "strict_min_version"]
    assert minimum == "140.0"
    assert entry == {"version": __version__,
                     "update_link": f"https://t.example.org/mailtracker/mailtracker-{__version__}.xpi",
                     "applications": {"gecko": {"strict_min_version": minimum}}}


def test_the_changelog_and_license_name_this_release():
    """CHANGELOG.md has a section for __version__; LICENSE is the MIT license setup.cfg declares."""
    assert f"\n## {__version__} " in (ROOT / "CHANGELOG.md").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "license = MIT" in (ROOT / "setup.cfg").read_text()


def test_a_version_mismatch_is_refused(tmp_path):
    """build_dist reads each artefact's own version and refuses a set that differs or is incomplete."""
    with zipfile.ZipFile(tmp_path / "mailtracker-9.9.9.xpi", "w") as archive:
        archive.writestr("manifest.json", json.dumps({"version": "9.9.9"}))
    versions = build_dist.artefact_versions(tmp_path)
    assert versions == {"mailtracker-9.9.9.xpi": "9.9.9"}
    with pytest.raises(SystemExit, match="disagree"):
        build_dist.check_versions({"a.whl": __version__, "a.tar.gz": __version__, **versions}, __version__)
    with pytest.raises(SystemExit, match="disagree"):
        build_dist.check_versions({"a.whl": __version__, "a.xpi": __version__}, __version__)
    build_dist.check_versions({"a.whl": "1", "a.tar.gz": "1", "a.xpi": "1"}, "1")


@pytest.fixture(scope="module")
def installed_wheel(dist, tmp_path_factory):
    """A venv with only the wheel installed (no checkout around it); the dependencies come from
    this interpreter's site-packages. Returns the venv and the environment to run it in."""
    import site
    import sysconfig

    venv = tmp_path_factory.mktemp("wheel") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    (wheel,) = dist.glob("*.whl")
    # The venv's own pip: 'pip install --prefix' from this interpreter would also uninstall
    # the mailtracker the suite is running from.
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=300, capture_output=True)
    assert (venv / "share/mailtracker/systemd/mailtracker.service").is_file()
    # The dependencies come from this interpreter's site-packages; mailtracker itself only from the wheel.
    deps = os.pathsep.join([sysconfig.get_paths()["purelib"], *site.getsitepackages()])
    env = {**os.environ, "PYTHONPATH": deps}
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import mailtracker; print(mailtracker.__file__)"],
                           env=env, capture_output=True, text=True, check=True, cwd=venv.parent)
    assert where.stdout.startswith(str(venv)), where.stdout
    return venv, env


def test_the_installed_wheel_finds_its_unit_and_caddyfile(installed_wheel, tmp_path):
    """Installed from the wheel, setup-server finds the packaged unit and Caddyfile in
    <prefix>/share/mailtracker and writes a unit naming that install's script."""
    venv, env = installed_wheel
    root = tmp_path / "root"
    proc = subprocess.run([str(venv / "bin" / "mailtracker"), "setup-server", "--root", str(root),
                           "--domain", "t.example.org"], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    unit = (root / "etc/systemd/system/mailtracker.service").read_text()
    assert f"ExecStart={venv}/bin/mailtracker serve --config /etc/mailtracker/server.toml" in unit
    assert "t.example.org {" in (root / "etc/caddy/mailtracker.caddy").read_text()


def test_the_installed_wheel_writes_the_add_on_of_its_version(installed_wheel, dist, tmp_path):
    """pipx users get the add-on from the package: `mailtracker addon --output FILE` writes the .xpi of
    exactly the installed version, the files make xpi ships, byte for byte a build of the same sources."""
    import build_xpi

    venv, env = installed_wheel
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert f"mailtracker/addon/mailtracker-{__version__}.xpi" in archive.namelist()
    target = tmp_path / "out" / "addon.xpi"
    proc = subprocess.run([str(venv / "bin" / "mailtracker"), "--home", str(tmp_path / "home"), "addon",
                           "--output", str(target)], env=env, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"Wrote the add-on to {target}" in proc.stdout and "Install Add-on From File" in proc.stdout
    with zipfile.ZipFile(target) as written:
        assert json.loads(written.read("manifest.json"))["version"] == __version__
        names = written.namelist()
    (release_xpi,) = dist.glob("*.xpi")
    with zipfile.ZipFile(release_xpi) as release:
        assert names == release.namelist()
    assert target.read_bytes() == build_xpi.build(tmp_path / "reference").read_bytes()


def test_the_add_on_goes_to_downloads_and_says_where(installed_wheel, tmp_path):
    """Without --output the .xpi lands where Thunderbird's file picker finds it, and the command says where."""
    venv, env = installed_wheel
    (tmp_path / "Downloads").mkdir()
    env = {**env, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = subprocess.run([str(venv / "bin" / "mailtracker"), "--home", str(tmp_path / "home"), "addon"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    target = tmp_path / "Downloads" / f"mailtracker-{__version__}.xpi"
    assert target.is_file() and f"Wrote the add-on to {target}" in proc.stdout
