"""One fix per error code (core/hints.py), shared by the command line and the add-on: every code
has one; the host sends it with each error and says before Send why a mint would fail."""

import inspect

from mailtracker.core import errors
from mailtracker.core.hints import HINTS, hint_for
from tests.conftest import HostProcess, run_cli


def test_every_error_code_has_one_hint_written_as_a_sentence():
    codes = {cls.code for _, cls in inspect.getmembers(errors, inspect.isclass)
             if issubclass(cls, errors.MailtrackerError)}
    assert codes <= set(HINTS), sorted(codes - set(HINTS))
    for code, hint in HINTS.items():
        assert hint[:1].isupper() and hint.endswith("."), (code, hint)


def test_the_host_says_before_send_that_a_missing_secret_stops_the_mint(home):
    host = HostProcess(home)
    try:
        assert host.call("config")["data"]["mint_problem"] is None
        home.secret_path.rename(home.secret_path.with_name("secret.away"))
        problem = host.call("config")["data"]["mint_problem"]
        assert problem["code"] == 12 and problem["hint"] == hint_for(12)
        assert problem["message"].startswith("No secret at") and "install-host" not in problem["hint"]
        reply = host.call("mint", subject="s", recipients=["a@example.org"], identity="me@example.org")
        assert (reply["ok"], reply["code"], reply["hint"]) == (False, 12, hint_for(12))
    finally:
        host.close()


def test_an_error_names_its_fix_once_on_the_command_line(home, tmp_path):
    proc = run_cli("show", "zzzzzzz", home=home, check=False)
    assert proc.returncode == 61 and f"mailtracker: {hint_for(61)}" in proc.stderr
    # A message that already names the fix's command is not followed by it again.
    proc = run_cli("--home", str(tmp_path / "none"), "list", check=False)
    assert proc.returncode == 10 and proc.stderr.count("mailtracker init") == 1
