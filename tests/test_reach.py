"""A pixel server recipients cannot reach is said plainly: init, tag, doctor, the host's config
(which the add-on's options page shows), and the demo, which is local on purpose."""

import json

import pytest

from mailtracker.core.reach import where_only
from tests.conftest import HostProcess, run_cli

LOOPBACK_SAYS = ("Recipients cannot reach this server: http://127.0.0.1:56789 can be loaded only from "
                 "this machine, so no recipient's open will ever be seen; set your server's public address: "
                 "mailtracker init --server-url https://t.example.org")


@pytest.mark.parametrize("url, only", [
    ("http://127.0.0.1:56789", "this machine"), ("http://localhost:8080", "this machine"),
    ("http://[::1]:56789", "this machine"), ("http://0.0.0.0", "this machine"),
    ("http://192.168.1.10", "this network"), ("http://10.1.2.3:56789", "this network"),
    ("http://[fe80::1]", "this network"), ("http://[fd00::5]", "this network"),
    ("http://nas.local", "this network"), ("http://myserver:56789", "this network"),
    ("https://t.example.org", None), ("https://8.8.8.8", None), ("https://[2001:4860::8888]", None),
])
def test_where_only_a_server_url_can_be_reached(url, only):
    assert where_only(url) == only


def test_init_without_a_server_url_says_recipients_cannot_reach_it(tmp_path):
    out = run_cli("--home", str(tmp_path / "h"), "init").stdout
    assert LOOPBACK_SAYS in out


def test_init_with_a_private_address_says_so_and_a_public_name_is_quiet(tmp_path):
    out = run_cli("--home", str(tmp_path / "h"), "init", "--server-url", "http://192.168.1.10:56789").stdout
    assert "Recipients cannot reach this server: http://192.168.1.10:56789 can be loaded only from this network" in out
    out = run_cli("--home", str(tmp_path / "h"), "init", "--server-url", "https://t.example.org").stdout
    assert "cannot reach" not in out


def test_tag_on_a_loopback_home_warns_on_stderr_and_keeps_its_json(home):
    proc = run_cli("tag", "--name", "Ann", "--json", home=home)
    assert json.loads(proc.stdout)["url"].startswith("http://127.0.0.1:56789/p/")
    assert f"mailtracker: {LOOPBACK_SAYS}" in proc.stderr


def test_doctor_notes_a_loopback_server(home):
    run_cli("install-host", home=home)
    out = run_cli("doctor", home=home).stdout
    assert f"note    {LOOPBACK_SAYS}" in out


def test_the_hosts_config_carries_the_sentence_for_the_options_page(home):
    host = HostProcess(home)
    try:
        assert host.call("config")["data"]["unreachable"] == LOOPBACK_SAYS
        run_cli("init", "--server-url", "https://t.example.org", home=home)
        assert host.call("config")["data"]["unreachable"] == ""
    finally:
        host.close()
