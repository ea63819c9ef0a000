"""The command line as a person uses it: real subprocesses, real server, real watcher."""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from mailtracker.cli import build_parser
from mailtracker.core.settings import init_home
from mailtracker.cli.output import describe_time
from mailtracker.desktop.register import read_register
from tests.conftest import PixelServer, run_cli, wait_for

COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


@pytest.mark.parametrize("command", [None] + COMMANDS)
def test_every_command_has_help(command):
    """`mailtracker [COMMAND] --help` explains itself and exits 0."""
    proc = run_cli(*([command] if command else []), "--help")
    assert "usage: mailtracker" in proc.stdout and "options:" in proc.stdout and len(proc.stdout) > 120


def test_commands_on_an_uninitialised_home_say_run_init(tmp_path):
    """Without a home, commands fail with the NotInitialised code and name the fix."""
    proc = run_cli("--home", str(tmp_path / "none"), "list", check=False)
    assert proc.returncode == 10 and "mailtracker init" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_newcomer_flow_tag_curl_watch_register(home):
    """README quick start: tag, serve, watch, curl the pixel -> opens=1 and a last_open."""
    tag = json.loads(run_cli("tag", "--name", "John", "--json", home=home).stdout)
    server = PixelServer(home)
    watcher = subprocess.Popen([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "watch"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert "Watching" in watcher.stdout.readline()
        requests.get(server.url(tag["id"]), headers={"User-Agent": "curl/7.88.1"})  # as the README does

        def register_row():
            if home.register_path.exists():
                rows = [r for r in read_register(home.register_path) if r["id"] == tag["id"]]
                return rows and rows[0]["opens"] == "1" and rows[0]
        row = wait_for(register_row, timeout=10.0, what="opens=1 in register.csv")
        assert row["last_open"].endswith("Z")
    finally:
        os.killpg(watcher.pid, signal.SIGTERM)
        assert watcher.wait(timeout=10) == 0
        watcher.stdout.close()
        server.stop()
    listing = run_cli("list", home=home).stdout
    assert re.search(rf"{tag['id'][:7]}\s+John\s+\d{{4}}-\d\d-\d\d \d\d:\d\d UTC \(tagged\)\s+1\s+0\s+0\s+\d{{4}}-\d\d-\d\d", listing), listing


def test_list_json_and_fold_output(home):
    """`fold` prints what it folded; `list --json` gives the register rows."""
    run_cli("tag", "--name", "Ann", "--subject", "Hello", home=home)
    assert "1 new tags" in run_cli("fold", home=home).stdout
    rows = json.loads(run_cli("list", "--json", home=home).stdout)
    assert [(r["name"], r["subject"], r["opens"]) for r in rows] == [("Ann", "Hello", 0)]


def test_rebuild_command_regenerates_the_register(home):
    """`rebuild` recreates a deleted register from the logs alone."""
    run_cli("tag", "--name", "Ann", home=home)
    run_cli("fold", home=home)
    home.register_path.unlink()
    assert "Rebuilt" in run_cli("rebuild", home=home).stdout
    assert [r["name"] for r in read_register(home.register_path)] == ["Ann"]


def test_describe_time_reads_like_a_person_would_say_it():
    """Times show as UTC plus how long ago."""
    from datetime import datetime, timezone

    now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
    assert describe_time("", now) == "never"
    assert describe_time("2026-11-24T10:00:00.000Z", now) == "2026-11-24 10:00 UTC (2 h ago)"
    assert describe_time("2026-11-24T11:59:30.000Z", now).endswith("(just now)")


def test_demo_on_a_port_another_pixel_server_holds_prints_nothing_and_fails(pixel_server, tmp_path):
    """`make run` beside a running server: no curl to try (it would reach the other server), the
    port named with what to do instead, and a non-zero exit."""
    port = pixel_server.base.rsplit(":", 1)[1]
    proc = subprocess.run([sys.executable, "-m", "mailtracker", "--home", str(tmp_path / "demo"), "demo",
                           "--port", port], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 50, proc.stderr
    assert proc.stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "make run DEMO_PORT=N" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_runs_server_watcher_and_counts_a_curl(tmp_path):
    """`make run`'s command: prints a demo pixel; fetching it prints opens=1."""
    demo_home = tmp_path / "demo"
    with socket_port() as port:
        pass
    proc = subprocess.Popen([sys.executable, "-m", "mailtracker", "--home", str(demo_home), "demo",
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    try:
        url, banner = None, ""
        for line in proc.stdout:
            banner += line
            found = re.search(r"curl -s -o /dev/null (\S+)", line)
            if found:
                url = found.group(1)
            if "Ctrl-C stops" in line:
                break
        assert url and url.startswith(f"http://127.0.0.1:{port}/p/")
        assert "This demo is local: its server listens on 127.0.0.1, so only this machine can load its pixels" in banner
        assert requests.get(url, headers={"User-Agent": "curl/7.88.1"}).status_code == 200
        opened = ""
        for line in proc.stdout:  # the demo never exits by itself: this ends at the line or the timeout
            if "Opened:" in line:
                opened = line
                break
        assert "opens=1" in opened, "the demo never printed the open"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        proc.stdout.close()


class socket_port:
    def __enter__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()


def test_every_error_code_is_in_the_docs_table():
    """docs/commands.md's code table names every error of the hierarchy with its code, once."""
    import inspect

    from mailtracker.core import errors

    table = (Path(__file__).resolve().parents[1] / "docs" / "commands.md").read_text().split("## Exit and error codes")[1]
    listed = {int(code) for code in re.findall(r"^\| (\d+) \|", table, flags=re.M)}
    classes = [cls for _, cls in inspect.getmembers(errors, inspect.isclass)
               if issubclass(cls, errors.MailtrackerError)]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), sorted(codes)
    assert set(codes) <= listed, sorted(set(codes) - listed)


def test_tag_into_a_closed_pipe_prints_no_traceback(home):
    """`mailtracker tag … | head`: the reader went away; no BrokenPipeError traceback, SIGPIPE's status."""
    init_home(home, server_url="https://t.example.org")  # a loopback server's warning is not the point here
    reader, writer = os.pipe()
    os.close(reader)
    try:
        proc = subprocess.run([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "tag",
                               "--name", "Pipe"], stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(writer)
    assert proc.stderr == "" and proc.returncode == 141


@pytest.mark.parametrize("args", [["--help"], ["tag", "--json", "--name", "J"]])
def test_output_into_a_closed_pipe_ends_quietly(home, args):
    """Help (printed by argparse) and --json output into a pipe nobody reads: no traceback, no message."""
    init_home(home, server_url="https://t.example.org")  # a loopback server's warning is not the point here
    reader, writer = os.pipe()
    os.close(reader)
    try:
        proc = subprocess.run([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), *args],
                              stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(writer)
    # argparse itself ignores a failed write of its help, and exits 0.
    assert proc.stderr == "" and proc.returncode == (0 if args == ["--help"] else 141)


@pytest.mark.parametrize("key", ["-abcdef", "--abcdef", "-"])
def test_an_api_key_beginning_with_a_dash_is_accepted(key):
    """`syncthing check --api-key -abc` takes -abc as the key (Syncthing's keys may start with '-')."""
    from mailtracker.cli import join_dash_values

    args = build_parser().parse_args(join_dash_values(["syncthing", "check", "--api-key", key, "--fix"]))
    assert args.api_key == key and args.fix
    args = build_parser().parse_args(join_dash_values(["syncthing", "check", f"--api-key={key}"]))
    assert args.api_key == key


def test_show_and_list_print_no_control_characters(home):
    """ESC, C1 CSI/OSC and newlines in a name, subject or client never reach the terminal raw."""
    from mailtracker.core.csvcodec import format_row, header_line
    from mailtracker.core.hitline import HIT_COLUMNS
    from mailtracker.core.settings import load_config
    from mailtracker.desktop.tags import mint_tag

    config = load_config(home)
    tag = mint_tag(home, config, name="Ann\x1b]0;pwned\x07\u009b31m", subject="a\u009d0;x\u009c\nb")
    hits = home.hits_dir(config) / "hits-old-2026-11-24.csv"
    hits.parent.mkdir(parents=True, exist_ok=True)
    hits.write_bytes(header_line(HIT_COLUMNS) + format_row(
        ["boot1.1", "2026-11-24T10:00:00.000Z", tag.id, "GET", "1.2.3.4\u009b2J", "Thunderbird/128.0 \u009b2J", ""]).encode())
    run_cli("fold", home=home)
    for command in (("show", tag.short_id), ("list",)):
        out = run_cli(*command, home=home).stdout
        assert "Ann" in out
        bad = [c for c in out if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f]
        assert not bad, (command, bad)


def _next_millisecond() -> None:
    """Wait (bounded) until utc_timestamp() gives another millisecond."""
    from mailtracker.core.timestamps import utc_timestamp

    now = utc_timestamp()
    wait_for(lambda: utc_timestamp() != now, timeout=2, interval=0.0005, what="the clock's next millisecond")


def test_list_and_show_group_the_copies_sent_individually(home):
    """Copies of one mail sent individually stand together in `list` under their group,
    and `show` of one of them lists every recipient's copy; the register names the group."""
    from mailtracker.core.settings import load_config
    from mailtracker.desktop.tags import mint_tag

    config = load_config(home)
    group = "a1b2c3d4-0000-4000-8000-000000000001"
    # Each minted in its own millisecond: tags made in the same one stand in the order of their
    # ids, and the lone tag must stand between the copies by time.
    first = mint_tag(home, config, subject="Offer", recipients=["ann@x.org"], group=group)
    _next_millisecond()
    lone = mint_tag(home, config, name="Lone", subject="Other")
    _next_millisecond()
    second = mint_tag(home, config, subject="Offer", recipients=["bob@x.org"], group=group)
    run_cli("fold", home=home)
    lines = run_cli("list", home=home).stdout.splitlines()
    order = [next(i for i, line in enumerate(lines) if line.startswith(tag.short_id))
             for tag in (first, second, lone)]
    assert order == sorted(order), lines
    assert lines[0].rstrip().endswith("GROUP") and lines[order[0]].rstrip().endswith(group[:8])
    shown = run_cli("show", second.short_id, home=home).stdout
    assert f"sent individually (group {group[:8]}): 2 recipients, 0 opened" in shown
    assert "ann@x.org" in shown and "bob@x.org" in shown
    rows = {row["id"]: row for row in read_register(home.register_path)}
    assert rows[first.id]["group"] == rows[second.id]["group"] == group and rows[lone.id]["group"] == ""


def _reference_rows():
    """The command reference's table rows, wherever the docs keep it (README.md or docs/)."""
    root = Path(__file__).resolve().parents[1]
    texts = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    return [line for path in texts for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("| `mailtracker ")]


def _options_of(parser):
    """Every --option of a parser and of its actions' parsers."""
    options = set()
    for action in parser._actions:
        options.update(flag for flag in action.option_strings if flag.startswith("--") and flag != "--help")
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                options |= _options_of(sub)
    return options


@pytest.mark.parametrize("command", COMMANDS)
def test_the_command_reference_names_every_command_and_option(command):
    """The command reference is checked against the parser: each command has a row naming each of its options."""
    rows = [row for row in _reference_rows() if re.search(rf"`(mailtracker )?{re.escape(command)}[ `]", row)]
    assert rows, f"the command reference has no row for 'mailtracker {command}'"
    parser = build_parser()._subparsers._group_actions[0].choices[command]
    missing = sorted(option for option in _options_of(parser) if option not in " ".join(rows))
    assert not missing, f"the reference row for '{command}' does not name {missing}"


def test_a_mistyped_command_gets_the_usage_and_a_suggestion():
    proc = run_cli("tga", "--name", "x", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("usage: mailtracker ") and "no command 'tga'; did you mean 'tag'?" in proc.stderr


def test_a_mistyped_option_gets_the_subcommands_usage_and_a_suggestion(home):
    proc = run_cli("tag", "--nmae", "Ann", home=home, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: mailtracker tag ") and "no option --nmae; did you mean --name?" in proc.stderr
    assert not home.tags_path.exists() or "Ann" not in home.tags_path.read_text(encoding="utf-8-sig")
    # argparse's own abbreviations still work.
    assert run_cli("tag", "--na", "Ann", "--js", home=home).stdout.startswith("{")
