"""The oldest Thunderbird the add-on claims to run on (manifest.json's strict_min_version),
driven end to end on the core path only: a tracked send carries one verifying pixel, the
Sent copy in Local Folders has none (nor, for a POP3 account that never sent, in the Fcc
folder Thunderbird makes for it), and a recipient's open reaches the Tracked mail page.

The binary is Debian's 140 ESR, unpacked from Debian's archive into .cache/ by
`make system-packages` (packaging/system_packages.py), or MAILTRACKER_OLDER_THUNDERBIRD.
Only these tests run on it, to keep the suite's time small; the rest of the e2e
suite runs on the current ESR (tests/e2e/conftest.py).
"""

import json
from pathlib import Path

import pytest

from tests.e2e import test_sent_copy as sent_copy_on_the_current_esr
from tests.e2e import test_thunderbird as on_the_current_esr
from tests.e2e.conftest import EXTENSION_DIR, _require_thunderbird, started_desktop
from tests.e2e.thunderbird import OLDER_THUNDERBIRD

pytestmark = pytest.mark.slow


def claimed_minimum() -> int:
    manifest = json.loads((EXTENSION_DIR / "manifest.json").read_text(encoding="utf-8"))
    return int(manifest["browser_specific_settings"]["gecko"]["strict_min_version"].split(".")[0])


@pytest.fixture(scope="module")
def older(tmp_path_factory):
    """The whole desktop (home, pixel server, SMTP sink) around the older Thunderbird; for
    this module only, so its memory is given back before the next module."""
    _require_thunderbird(OLDER_THUNDERBIRD, "make system-packages unpacks Debian's 140 ESR there")
    with started_desktop(tmp_path_factory.mktemp("e2e-older"), OLDER_THUNDERBIRD) as desktop:
        yield desktop


def test_the_older_thunderbird_is_the_oldest_version_the_add_on_claims(older):
    """The version run here is the add-on's strict_min_version's major: the claim is what is tested."""
    assert int(older.tb.version().split(".")[0]) == claimed_minimum()


# The same tests as on the current ESR, run on the older one.

def test_older_tracked_send_carries_exactly_one_verifying_pixel(older):
    on_the_current_esr.test_tracked_send_carries_exactly_one_verifying_pixel(older)


def test_older_local_folders_sent_copy_has_no_pixel(older, tmp_path: Path):
    sent_copy_on_the_current_esr.test_local_folders_sent_copy_has_no_pixel(older, tmp_path)


@pytest.mark.parametrize("deferred", [False, True], ids=["own-folders", "deferred"])
def test_older_pop3_account_that_never_sent_gets_its_clean_copy_in_its_fcc_folder(older, tmp_path: Path, deferred):
    sent_copy_on_the_current_esr.test_a_pop3_account_that_never_sent_gets_its_clean_copy_in_its_fcc_folder(
        older, tmp_path, deferred)


def test_older_recipient_open_shows_in_thunderbird(older):
    on_the_current_esr.test_recipient_open_shows_in_thunderbird(older)
