"""The home: where files live, init, the config file and the secret."""

import os
import pty
import stat
import subprocess
import sys

import pytest

from mailtracker.core.errors import ConfigError, NotInitialisedError, SecretError
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import Config, init_home, load_config
from tests.conftest import run_cli


def test_init_creates_config_secret_and_hits_dir(tmp_path):
    """init makes a working home; the secret is readable by its owner only."""
    home = Home.locate(str(tmp_path / "h"))
    done = init_home(home)
    assert done["created_config"] and done["new_secret"]
    assert load_config(home) == Config()
    assert stat.S_IMODE(home.secret_path.stat().st_mode) == 0o600
    assert len(read_secret(home.secret_path)) == 32
    assert home.hits_dir(load_config(home)).is_dir()


def test_init_twice_keeps_the_secret_and_settings(tmp_path):
    """Re-running init never replaces the secret or forgets a setting."""
    home = Home.locate(str(tmp_path / "h"))
    init_home(home, server_url="https://t.example.org", path_prefix="/px")
    secret = home.secret_path.read_bytes()
    done = init_home(home)
    assert not done["new_secret"]
    assert home.secret_path.read_bytes() == secret
    assert load_config(home).server_url == "https://t.example.org"
    assert load_config(home).pixel_url("tok") == "https://t.example.org/px/tok.gif"


def test_init_force_replaces_the_secret(tmp_path):
    """Only --force writes a new secret."""
    home = Home.locate(str(tmp_path / "h"))
    init_home(home)
    secret = home.secret_path.read_bytes()
    init_home(home, force=True)
    assert home.secret_path.read_bytes() != secret
    assert stat.S_IMODE(home.secret_path.stat().st_mode) == 0o600


def test_mailtracker_home_variable_and_flag_choose_the_home(tmp_path, monkeypatch):
    """--home wins over MAILTRACKER_HOME, which wins over the platform dirs."""
    monkeypatch.setenv("MAILTRACKER_HOME", str(tmp_path / "env"))
    assert Home.locate().data_dir == tmp_path / "env"
    assert Home.locate(str(tmp_path / "flag")).config_dir == tmp_path / "flag"


def test_default_home_uses_platform_dirs(tmp_path):
    """Without an override, settings go to the config dir and data to the data dir."""
    home = Home.locate()
    assert home.config_dir.name == "mailtracker" and home.data_dir.name == "mailtracker"
    assert home.config_dir != home.data_dir
    run_cli("init")
    assert home.config_path.exists() and home.secret_path.exists() and home.data_dir.is_dir()


@pytest.mark.parametrize("url", ["ftp://x", "not a url", "https://", "https://h/?q=1"])
def test_bad_server_url_is_refused_with_a_reason(tmp_path, url):
    """A server URL that cannot serve pixels is refused, naming the problem."""
    with pytest.raises(ConfigError, match="server URL"):
        init_home(Home.locate(str(tmp_path / "h")), server_url=url)


@pytest.mark.parametrize("prefix", ["/a/../b", "/a b", "/<script>", "/%2e%2e"])
def test_bad_path_prefix_is_refused(tmp_path, prefix):
    """Path prefixes are plain segments: no traversal, spaces or markup."""
    with pytest.raises(ConfigError, match="path prefix"):
        init_home(Home.locate(str(tmp_path / "h")), path_prefix=prefix)


def test_path_prefix_is_normalised(tmp_path):
    """'px/', '/px' and '/px/' all mean /px; an empty prefix puts pixels at the root."""
    home = Home.locate(str(tmp_path / "h"))
    init_home(home, path_prefix="px/")
    assert load_config(home).path_prefix == "/px"
    init_home(home, path_prefix="/")
    assert load_config(home).pixel_url("t") == "http://127.0.0.1:56789/t.gif"


def test_uninitialised_home_says_run_init(tmp_path):
    """Commands on an empty home explain how to create it."""
    with pytest.raises(NotInitialisedError, match="mailtracker init"):
        load_config(Home.locate(str(tmp_path / "empty")))


def test_broken_config_and_secret_are_reported(tmp_path):
    """A hand-broken config or secret gives a clear error, not a traceback."""
    home = Home.locate(str(tmp_path / "h"))
    init_home(home)
    home.secret_path.write_text("not base64 !!!\n")
    with pytest.raises(SecretError):
        read_secret(home.secret_path)
    home.config_path.write_text("[pixel\nserver_url=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(home)


@pytest.mark.posix_names  # a folder named with '"' and '\\': Linux and macOS allow them
def test_an_emoji_and_quotes_in_a_path_round_trip(tmp_path):
    """A character outside the BMP (📬), quotes and a backslash in hits_dir are written as valid TOML."""
    home = Home.locate(str(tmp_path / "h"))
    folder = tmp_path / 'hits 📬 "q" \\ ü'
    init_home(home, hits_dir=str(folder), pull_url="https://t.example.org/📬")
    config = load_config(home)
    assert config.hits_dir == str(folder) and config.pull_urls == ("https://t.example.org/📬",)
    assert "📬" in home.config_path.read_text(encoding="utf-8")
    init_home(home, pull_url="")
    assert load_config(home).hits_dir == str(folder)


@pytest.mark.parametrize("url", ["http://h:99999", "http://h:0", "https://h:port"])
def test_a_port_that_is_not_a_port_is_refused(tmp_path, url):
    """init --server-url (and --pull-url) with an impossible port exits 11, naming the port, no traceback."""
    for option in ("--server-url", "--pull-url"):
        proc = run_cli("--home", str(tmp_path / "h"), "init", option, url, check=False)
        assert proc.returncode == 11 and "port" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_doctor_server_on_a_hand_edited_impossible_port_says_so(tmp_path):
    """A config edited by hand to port 99999: doctor --server exits 11 with the reason, not a traceback."""
    home = Home.locate(str(tmp_path / "h"))
    init_home(home)
    home.config_path.write_text(home.config_path.read_text().replace(
        "http://127.0.0.1:56789", "http://127.0.0.1:99999"))
    proc = run_cli("--home", str(tmp_path / "h"), "doctor", "--server", check=False)
    assert proc.returncode == 11 and "99999" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("url", ["https://t.example.org/p", "https://t.example.org/p/"])
def test_a_server_url_ending_in_the_prefix_does_not_repeat_it(tmp_path, url):
    """--server-url https://h/p with the default prefix /p gives https://h/p/<token>.gif, not /p/p/."""
    home = Home.locate(str(tmp_path / "h"))
    init_home(home, server_url=url)
    assert load_config(home).pixel_url("tok") == "https://t.example.org/p/tok.gif"
    init_home(home, server_url="https://t.example.org/track/p", path_prefix="/p")
    assert load_config(home).pixel_url("tok") == "https://t.example.org/track/p/tok.gif"
    init_home(home, server_url="https://t.example.org/track", path_prefix="/p")
    assert load_config(home).pixel_url("tok") == "https://t.example.org/track/p/tok.gif"


def test_init_force_warns_that_tags_stop_counting_and_stays_scriptable(home):
    """Without a terminal: a warning naming the tags that stop counting, and the secret is replaced."""
    from mailtracker.desktop.tags import mint_tag

    mint_tag(home, load_config(home), name="Ann")
    secret = home.secret_path.read_bytes()
    proc = run_cli("init", "--force", home=home, stdin=subprocess.DEVNULL)
    assert "stop counting" in proc.stderr and "(1 rows in tags.csv)" in proc.stderr
    assert "Wrote a new secret" in proc.stdout and home.secret_path.read_bytes() != secret


@pytest.mark.parametrize("answer, replaced", [("n\n", False), ("\n", False), ("yes\n", True)])
def test_init_force_on_a_terminal_asks_first(home, answer, replaced):
    """On a terminal, --force asks; anything but yes keeps the secret and changes nothing."""
    secret = home.secret_path.read_bytes()
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "init",
                                 "--force", "--server-url", "https://t.example.org"], stdin=follower,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.write(leader, answer.encode())
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(leader)
        os.close(follower)
    assert proc.returncode == 0 and "Replace the secret? [y/N]" in err
    assert (home.secret_path.read_bytes() != secret) == replaced
    assert (load_config(home).server_url == "https://t.example.org") == replaced
    if not replaced:
        assert "nothing was changed" in out


def test_the_desktops_files_are_the_users_alone(tmp_path):
    """Every file the desktop writes (config, tags, register, read model, state) is 0600 and every
    folder 0700, whatever the umask; 'init' tightens an older home that was left open."""

    root = tmp_path / "home"
    old_umask = os.umask(0o022)
    try:
        root.mkdir(mode=0o755)
        run_cli("--home", str(root), "init", "--server-url", "https://t.example.org")
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        run_cli("--home", str(root), "tag", "--name", "Ann", "--subject", "Offer", "--to", "ann@example.org")
        run_cli("--home", str(root), "fold")
        run_cli("--home", str(root), "report")
    finally:
        os.umask(old_umask)
    entries = [path for path in root.rglob("*")]
    assert any(path.name == "register.csv" for path in entries) and any(p.suffix == ".sqlite3" for p in entries)
    for path in [root, *entries]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, f"{path.relative_to(tmp_path)} is {mode:o}"


def test_the_pull_is_live_by_default_and_can_be_turned_off(tmp_path):
    """pull_live is written by init (true), read back, kept by a re-init; a non-boolean is refused."""
    home = Home.locate(str(tmp_path / "h"))
    init_home(home, pull_url="https://t.example.org")
    assert load_config(home).pull_live is True and "pull_live = true" in home.config_path.read_text()
    home.config_path.write_text(home.config_path.read_text().replace("pull_live = true", "pull_live = false"))
    init_home(home)
    assert load_config(home).pull_live is False
    home.config_path.write_text(home.config_path.read_text().replace("pull_live = false", 'pull_live = "yes"'))
    with pytest.raises(ConfigError, match="pull_live must be true or false"):
        load_config(home)
