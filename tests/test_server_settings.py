"""The server settings table: one row per setting gives serve's flag, server.toml's key and
comment, and what setup-server starts a VPS with."""

from mailtracker.server.config import read_server_config, server_config_text
from mailtracker.server.settings import SETTINGS, ServerSettings, vps_values
from tests.conftest import run_cli


def test_every_setting_has_a_flag_a_key_and_reads_back_from_the_file(tmp_path):
    """serve --help names each setting's flag; a file of every setting (not the defaults) reads
    back as exactly those ServerSettings fields, each under its comment where it has one."""
    usage = run_cli("serve", "--help").stdout
    assert all(setting.flag in usage for setting in SETTINGS)
    changed = {"host": "::", "port": 8080, "hits_dir": "/h", "server_id": "eu1", "trusted_proxies": ["10.0.0.1"],
               "client_address": "full", "serve_hits": True, "retention_days": 7, "secret_file": "/s",
               "workers": 3, "path_prefix": "/q", "origins_file": "/o.json", "devices_dir": "/d"}
    assert set(changed) == {setting.name for setting in SETTINGS}
    assert all(changed[setting.name] != setting.default for setting in SETTINGS)
    text = server_config_text({setting.key: changed[setting.name] for setting in SETTINGS}, None)
    path = tmp_path / "server.toml"
    path.write_text(text)
    assert read_server_config(path) == changed
    assert ServerSettings(**read_server_config(path)).validated().origins_file == "/o.json"
    for setting in SETTINGS:
        if setting.comment:
            assert f"# {setting.comment}\n{setting.key} = " in text


def test_an_older_key_still_reads_and_setup_server_writes_todays(tmp_path):
    """A server.toml from before says trusted_proxy: it reads as trusted_proxies, and the
    next setup-server keeps the value under the new key."""
    root = tmp_path / "root"
    (root / "etc" / "caddy").mkdir(parents=True)
    run_cli("setup-server", "--root", str(root), "--domain", "t.example.org")
    config = root / "etc/mailtracker/server.toml"
    text = config.read_text()
    assert 'trusted_proxies = [\n    "127.0.0.1",\n]' in text or 'trusted_proxies = ["127.0.0.1"]' in text
    config.write_text(text.replace("trusted_proxies = ", "trusted_proxy = ").replace('"127.0.0.1",', '"10.1.2.3",')
                      .replace('["127.0.0.1"]', '["10.1.2.3"]'))
    assert read_server_config(config)["trusted_proxies"] == ["10.1.2.3"]
    run_cli("setup-server", "--root", str(root))
    assert "trusted_proxy " not in config.read_text()
    assert read_server_config(config)["trusted_proxies"] == ["10.1.2.3"]


def test_setup_server_starts_a_vps_with_the_tables_values(tmp_path):
    """Its first server.toml holds each setting the table gives a VPS value, with that value
    (the server id aside: named after the domain)."""
    root = tmp_path / "root"
    (root / "etc" / "caddy").mkdir(parents=True)
    run_cli("setup-server", "--root", str(root), "--domain", "t.example.org")
    written = read_server_config(root / "etc/mailtracker/server.toml")
    by_key = {setting.key: setting.name for setting in SETTINGS}
    assert written == {**{by_key[key]: value for key, value in vps_values().items()}, "server_id": "t.example.org"}
    assert vps_values()["retention_days"] == 90 and ServerSettings().retention_days == 0
