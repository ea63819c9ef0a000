"""install-host and doctor with a snap or Flatpak Thunderbird. There is no real snap or
Flatpak here: the tests build their directory layouts under the temp HOME, and a fake
`flatpak` program answers `flatpak info` and `flatpak override --show`."""

import json
import os
import stat
from pathlib import Path

import pytest

from mailtracker.desktop import sandboxes
from tests.conftest import run_cli

FAKE_FLATPAK = """#!/bin/sh
case "$*" in
  "info org.mozilla.Thunderbird") echo "Thunderbird - Thunderbird is a free and open source email client"; exit 0;;
  "info --show-permissions org.mozilla.Thunderbird") printf '[Context]\\nshared=network;ipc;\\n'; exit 0;;
  "override --user --show org.mozilla.Thunderbird") cat "$HOME/fake-overrides" 2>/dev/null; exit 0;;
esac
exit 1
"""


@pytest.fixture
def env(tmp_path):
    """The environment of a desktop with no session D-Bus (so no portal can be asked)."""
    environment = {key: value for key, value in os.environ.items() if key != "DBUS_SESSION_BUS_ADDRESS"}
    return environment


def fake_flatpak_on_path(env, tmp_path):
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    program = bin_dir / "flatpak"
    program.write_text(FAKE_FLATPAK)
    program.chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


def test_fake_snap_layout_install_host_says_what_to_do_and_doctor_is_not_ok(home, env):
    """A snap's ~/snap/thunderbird (fake, no real snap): install-host names the portal and the pref;
    doctor does not say the chain works, and names the other builds."""
    (Path.home() / "snap" / "thunderbird" / "common").mkdir(parents=True)
    out = run_cli("install-host", home=home, env=env).stdout
    assert "Found a snap Thunderbird" in out and sandboxes.PORTAL_PREF in out
    # How to reset an answer the portal keeps (a "no", or one from an older install).
    assert "flatpak permission-remove webextensions mailtracker.helper snap.thunderbird" in out
    assert "~/.local/share/flatpak/db/webextensions" in out
    doctor = run_cli("doctor", home=home, env=env, check=False)
    assert doctor.returncode == 90, doctor.stdout
    assert "BROKEN  snap Thunderbird can reach the helper:" in doctor.stdout
    assert "Debian's archive" in doctor.stdout and "thunderbird.net" in doctor.stdout
    assert "\nThunderbird can reach the helper." not in doctor.stdout


def test_fake_snap_with_a_portal_is_ok_and_says_to_set_the_pref(home):
    """With the WebExtensions portal (faked), the snap check passes and names the pref to set."""
    (check,) = sandboxes.check_sandbox(sandboxes.Sandbox("snap", "/snap/bin/thunderbird"), Path("/x"),
                                       portal=lambda: True)
    assert check.ok and sandboxes.PORTAL_PREF in check.detail
    (check,) = sandboxes.check_sandbox(sandboxes.Sandbox("snap", "/snap/bin/thunderbird"), Path("/x"),
                                       portal=lambda: False)
    assert not check.ok and "no WebExtensions portal" in check.detail


def test_fake_snap_binary_is_found(monkeypatch, tmp_path):
    """/snap/bin/thunderbird (here a fake path) shows a snap even before its first start."""
    binary = tmp_path / "snap-bin-thunderbird"
    binary.write_text("")
    monkeypatch.setattr(sandboxes, "SNAP_BINARY", binary)
    assert sandboxes.find_sandboxes() == [sandboxes.Sandbox("snap", str(binary))]


def test_fake_flatpak_layout_gets_a_manifest_in_its_sandbox_and_doctor_names_the_override(home, env):
    """~/.var/app/org.mozilla.Thunderbird (fake, no flatpak installed): install-host writes the manifest
    there with a flatpak-spawn launcher; doctor names the one override command; uninstall removes both."""
    (Path.home() / ".var" / "app" / "org.mozilla.Thunderbird").mkdir(parents=True)
    out = run_cli("install-host", home=home, env=env).stdout
    manifest_path = sandboxes.flatpak_manifest()
    manifest = json.loads(manifest_path.read_text())
    wrapper = Path(manifest["path"])
    assert wrapper == sandboxes.flatpak_wrapper() and wrapper.stat().st_mode & stat.S_IXUSR
    main = json.loads((Path.home() / ".mozilla/native-messaging-hosts/mailtracker.helper.json").read_text())
    assert f"exec flatpak-spawn --host {main['path']} \"$@\"" in wrapper.read_text()
    assert manifest["allowed_extensions"] == main["allowed_extensions"] and manifest["name"] == main["name"]
    override = "flatpak override --user --talk-name=org.freedesktop.Flatpak org.mozilla.Thunderbird"
    assert override in out
    assert "has no portal for native messaging" in out and "thunderbird.net" in out
    doctor = run_cli("doctor", home=home, env=env, check=False)
    assert doctor.returncode == 90 and "BROKEN  Flatpak Thunderbird can reach the helper:" in doctor.stdout
    assert override in doctor.stdout
    removed = run_cli("uninstall-host", home=home, env=env).stdout
    assert str(manifest_path) in removed and not manifest_path.exists() and not wrapper.exists()


def test_fake_flatpak_program_with_the_override_granted_is_ok(home, env, tmp_path):
    """A fake `flatpak` says Thunderbird is installed and may talk to org.freedesktop.Flatpak: doctor is ok."""
    env = fake_flatpak_on_path(env, tmp_path)
    run_cli("install-host", home=home, env=env)
    assert sandboxes.flatpak_manifest().exists()  # found by `flatpak info`, no ~/.var/app needed
    doctor = run_cli("doctor", home=home, env=env, check=False)
    assert "BROKEN  Flatpak Thunderbird can reach the helper: a Flatpak Thunderbird has no portal for native messaging" in doctor.stdout
    assert "and it may not start programs" in doctor.stdout
    (Path.home() / "fake-overrides").write_text("[Session Bus Policy]\norg.freedesktop.Flatpak=talk\n")
    doctor = run_cli("doctor", home=home, env=env)
    assert "ok   Flatpak Thunderbird can reach the helper: manifest" in doctor.stdout
    assert "BROKEN" not in doctor.stdout


def test_a_stale_flatpak_manifest_is_named(home, env):
    """A Flatpak manifest left by another install (another launcher) is BROKEN with the fix."""
    (Path.home() / ".var" / "app" / "org.mozilla.Thunderbird").mkdir(parents=True)
    run_cli("install-host", home=home, env=env)
    sandboxes.flatpak_wrapper().write_text("#!/bin/sh\nexec flatpak-spawn --host /old/launcher \"$@\"\n")
    doctor = run_cli("doctor", home=home, env=env, check=False)
    assert "BROKEN  Flatpak Thunderbird can reach the helper: no host manifest" in doctor.stdout
    assert "run 'mailtracker install-host'" in doctor.stdout


def test_without_a_sandbox_nothing_is_added(home, env):
    """A plain HOME (a Debian or Mozilla build): install-host and doctor are as before."""
    assert sandboxes.find_sandboxes() == []
    out = run_cli("install-host", home=home, env=env).stdout
    assert "Found a" not in out and not sandboxes.flatpak_manifest().exists()
    assert "can reach the helper:" not in run_cli("doctor", home=home, env=env).stdout
