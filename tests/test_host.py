"""The native messaging host, as Thunderbird runs it: a real subprocess, real frames."""

import json
import re
import struct
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from filelock import FileLock

from mailtracker.core.secret import read_secret
from mailtracker.core.settings import load_config, save_config
from mailtracker.core.timestamps import parse_timestamp, utc_timestamp
from mailtracker.core.tokens import verify_token
from mailtracker.desktop.fold import fold
from mailtracker.desktop.host import EXTENSION_ID, MAX_REQUEST_BYTES, PROTOCOL_VERSION
from mailtracker.desktop.install import OWN_COPY_DOMAINS
from mailtracker.desktop.register import read_register
from mailtracker.desktop.tags import mint_tag
from tests.conftest import BASE_TIME, HostProcess, PixelServer, run_cli, write_hits

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL_DOC = ROOT / "docs" / "protocol.md"


@pytest.fixture
def host(home):
    process = HostProcess(home)
    yield process
    process.close()


def test_ping_and_config(host, home):
    """ping names the version and protocol; config gives the pixel URL base."""
    assert host.call("ping")["data"]["protocol"] == PROTOCOL_VERSION
    data = host.call("config")["data"]
    assert data["pixel_base"] == "http://127.0.0.1:56789/p/"


def test_mint_sent_status_round_trip_with_a_real_open(host, home):
    """mint -> sent(Message-ID) -> a recipient's fetch -> status by Message-ID shows the open."""
    # The test's recipient opens at once; a real one takes longer than the delivery window.
    save_config(home, replace(load_config(home), delivery_window_s=0))
    minted = host.call("mint", subject="Hello", recipients=["ann@example.org", "bob@example.org"],
                       identity="me@example.org")["data"]
    assert verify_token(read_secret(home.secret_path), minted["id"])
    assert minted["url"].startswith("http://127.0.0.1:56789/p/") and "<img" in minted["html"]
    assert host.call("sent", tag_id=minted["id"], message_id="<abc.123@example.org>")["ok"]
    assert host.call("status", message_id="abc.123@example.org")["data"]["opens"] == 0
    server = PixelServer(home)
    try:
        requests.get(server.url(minted["id"]), headers={"User-Agent": "Outlook-iOS/2.0"})
    finally:
        server.stop()
    fold(home)  # what the daemon does; the host only reads what it folded
    status = host.call("status", message_id="<abc.123@example.org>")["data"]
    assert status["tracked"] and status["opens"] == 1 and status["status"] == "sent"
    assert [event["label"] for event in status["timeline"]] == ["open"]
    listed = host.call("list", limit=5)["data"]["tags"]
    assert listed[0]["id"] == minted["id"] and listed[0]["message_id"] == "abc.123@example.org"
    assert listed[0]["recipients"] == "ann@example.org; bob@example.org"


def test_unsent_and_self_fetch_are_recorded(host, home):
    """unsent marks the tag; self_fetch by Message-ID is accepted for a sent tag."""
    tag = host.call("mint", subject="s", recipients=[], identity="")["data"]
    assert host.call("unsent", tag_id=tag["id"], reason="send failed")["ok"]
    assert host.call("status", tag_id=tag["id"])["data"]["status"] == "unsent"
    other = host.call("mint", subject="s2", recipients=["x@y"], identity="")["data"]
    host.call("sent", tag_id=other["id"], message_id="m2@x")
    assert host.call("self_fetch", message_id="m2@x")["ok"]
    rows = [line.split(",") for line in home.self_fetches_path.read_text(encoding="utf-8-sig").splitlines()]
    assert [row[2] for row in rows if row[0] == other["id"]] == ["compose", "send", "display"]


def test_self_fetch_records_the_moment_the_add_on_gives(host, home):
    """The display began 40 s ago (a busy desktop, a slow helper): that moment is recorded, not now."""
    tag = host.call("mint", subject="s", recipients=["x@y"], identity="")["data"]
    host.call("sent", tag_id=tag["id"], message_id="late@x")
    began = time.time() - 40
    assert host.call("self_fetch", message_id="late@x", at=int(began * 1000))["ok"]
    last = home.self_fetches_path.read_text(encoding="utf-8-sig").splitlines()[-1].split(",")
    assert last[0] == tag["id"] and last[2] == "display"
    assert abs(parse_timestamp(last[1]) - began) < 0.01


def test_status_answers_at_once_while_another_process_folds(host, home):
    """A long rebuild elsewhere holds the fold lock: status still answers from the read model, fast."""
    tag = host.call("mint", subject="Busy", recipients=["x@y"], identity="")["data"]
    host.call("sent", tag_id=tag["id"], message_id="busy@x")
    fold(home)
    with FileLock(str(home.state_dir / "fold.lock")):
        took = []
        for _ in range(3):
            start = time.perf_counter()
            status = host.call("status", message_id="busy@x")["data"]
            took.append(time.perf_counter() - start)
            assert status["tracked"] and status["id"] == tag["id"]
    print(f"status while the fold lock is held: {sorted(took)[1] * 1000:.1f} ms (median of 3)")
    assert sorted(took)[1] < 2, "status waited for the fold lock"  # it is held until the block ends


def test_mint_while_paused_is_refused_with_its_own_code(host, home):
    """Paused from the tray: mint answers code 81 (the add-on then sends untracked); resume mints."""
    from mailtracker.desktop.marks import Marks

    def set_paused(paused):
        marks = Marks.load(home)
        marks.paused = paused
        marks.save(home)

    set_paused(True)
    reply = host.call("mint", subject="s", recipients=["a@b.c"], identity="")
    assert (reply["ok"], reply["code"]) == (False, 81) and "paused" in reply["message"]
    assert host.call("config")["data"]["paused"] is True
    set_paused(False)
    assert host.call("mint", subject="s", recipients=["a@b.c"], identity="")["ok"]


def test_status_of_an_untracked_message_says_so(host):
    """A message without a tag is reported as not tracked, not as an error."""
    assert host.call("status", message_id="never@seen") == {"id": "r1", "ok": True, "data": {"tracked": False}}


def test_malformed_requests_get_error_replies_and_the_host_keeps_going(host):
    """Bad JSON, non-objects, unknown commands, wrong protocol, bad arguments: errors, then ping works."""
    host.send_raw(b"{not json")
    reply = host.read()
    assert reply["ok"] is False and reply["id"] is None and reply["code"] == 60
    host.send_raw(b"\xff\xfe")
    assert host.read()["ok"] is False
    host.send_raw(b"[1,2]")
    assert "JSON object" in host.read()["message"]
    assert "unknown command" in host.call("format_disk")["message"].lower()
    assert "protocol" in host.call("ping", protocol=99)["message"]
    assert host.call("mint", recipients="not a list")["code"] == 60
    assert host.call("sent", tag_id="short", message_id="x")["ok"] is False
    assert host.call("ping")["ok"]


def test_oversized_frame_is_refused_and_the_stream_stays_in_step(host):
    """A frame over the cap gets an error reply; the next frame is read correctly."""
    host.send_raw(b" " * (MAX_REQUEST_BYTES + 1))
    reply = host.read()
    assert reply["ok"] is False and "limit" in reply["message"]
    assert host.call("ping")["ok"]


def test_host_writes_only_frames_and_exits_cleanly_on_eof(host):
    """stdout holds exactly the reply frames; closing stdin ends the host with 0."""
    for request_id in ("a", "b"):
        host.send_raw(json.dumps({"id": request_id, "command": "ping", "protocol": PROTOCOL_VERSION}).encode())
    host.proc.stdin.close()
    output = host.proc.stdout.read()
    frames = []
    while output:
        (length,) = struct.unpack("=I", output[:4])
        frames.append(json.loads(output[4:4 + length]))
        output = output[4 + length:]
    assert [frame["id"] for frame in frames] == ["a", "b"]
    assert host.close() == 0


def test_host_refuses_other_extensions(home):
    """Started for another extension id, the host answers nothing and exits non-zero."""
    other = HostProcess(home, extension_id="evil@example.com")
    other.proc.stdin.close()
    assert other.proc.wait(timeout=20) != 0
    assert other.proc.stdout.read() == b""
    assert b"refusing" in other.proc.stderr.read()
    other.proc.stdout.close()
    other.proc.stderr.close()


def test_every_command_in_the_protocol_table_is_answered(host):
    """docs/protocol.md's command table is the contract: each command listed there exists."""
    table = PROTOCOL_DOC.read_text().split("## Native messaging commands")[1].split("\n\n")[1]
    commands = re.findall(r"^\| `(\w+)`", table, flags=re.M)
    assert len(commands) >= 8
    for command in commands:
        reply = host.call(command)
        assert reply["ok"] or "unknown command" not in reply["message"].lower(), command


def test_install_host_doctor_uninstall(home, tmp_path):
    """install-host writes a manifest Thunderbird reads; doctor pings through it; uninstall removes it."""
    out = run_cli("install-host", home=home).stdout
    manifest_path = Path.home() / ".mozilla" / "native-messaging-hosts" / "mailtracker.helper.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["name"] == "mailtracker.helper" and manifest["allowed_extensions"] == [EXTENSION_ID]
    assert Path(manifest["path"]).is_absolute() and str(manifest_path) in out
    assert run_cli("install-host", home=home).returncode == 0  # safe to re-run
    doctor = run_cli("doctor", home=home)
    assert "helper answers a ping: version" in doctor.stdout and "BROKEN" not in doctor.stdout
    assert "Removed" in run_cli("uninstall-host", home=home).stdout
    assert not manifest_path.exists()


def test_doctor_names_identities_whose_server_files_its_own_copy(home):
    """Mail tracked from a Gmail address: doctor says Gmail keeps its own copy with the pixel
    (the add-on's options say it too, from the same list); other senders: nothing to say."""
    config = load_config(home)
    mint_tag(home, config, name="Ann", identity="Me Too <Me.Too@GoogleMail.com>")
    mint_tag(home, config, name="Bob", identity="me@example.org")
    run_cli("install-host", home=home)
    doctor = run_cli("doctor", home=home).stdout
    assert "tracked mail from me.too@googlemail.com goes out through Gmail" in doctor
    assert "me@example.org" not in doctor and "Thunderbird can reach the helper." in doctor
    js = (Path(__file__).resolve().parents[1] / "extension/modules/sentCopy.mjs").read_text()
    listed = re.search(r"OWN_COPY_DOMAINS = \[(.*?)\]", js).group(1)
    assert tuple(re.findall(r'"([^"]+)"', listed)) == OWN_COPY_DOMAINS


@pytest.mark.parametrize("breakage, link", [
    ("missing", "host manifest present"),
    ("wrong id", "extension allowed"),
    ("relative path", "launcher executable"),
    ("not executable", "launcher executable"),
    ("broken launcher", "helper answers a ping"),
])
def test_doctor_names_the_broken_link(home, breakage, link):
    """Each way the chain breaks is named by doctor, with the fix."""
    run_cli("install-host", home=home)
    manifest_path = Path.home() / ".mozilla" / "native-messaging-hosts" / "mailtracker.helper.json"
    manifest = json.loads(manifest_path.read_text())
    launcher = Path(manifest["path"])
    if breakage == "missing":
        manifest_path.unlink()
    elif breakage == "wrong id":
        manifest["allowed_extensions"] = ["other@example.org"]
    elif breakage == "relative path":
        manifest["path"] = "mailtracker.helper"
    elif breakage == "not executable":
        launcher.chmod(0o644)
    elif breakage == "broken launcher":
        launcher.write_text("#!/bin/sh\nexit 3\n")
    if manifest_path.exists():
        manifest_path.write_text(json.dumps(manifest))
    doctor = run_cli("doctor", home=home, check=False)
    assert doctor.returncode == 90
    assert f"The chain breaks at: {link}." in doctor.stdout


def test_extension_manifest_matches_the_helper():
    """One source of truth: the add-on's id and version are the helper's."""
    from mailtracker import __version__

    manifest = json.loads((ROOT / "extension" / "manifest.json").read_text())
    assert manifest["browser_specific_settings"]["gecko"]["id"] == EXTENSION_ID
    assert manifest["version"] == __version__
    assert manifest["manifest_version"] == 3
    # The oldest Thunderbird tested (tests/e2e/test_older_thunderbird.py).
    assert manifest["browser_specific_settings"]["gecko"]["strict_min_version"] == "140.0"


def test_remind_is_kept_with_the_tag_and_shown_by_list_status_and_the_cli(host, home):
    """remind appends the due time to tags.csv; list, status, register.csv and 'mailtracker list'
    show it, 'due' once it passed unopened; a time that is not UTC ISO 8601 is refused."""
    tag = host.call("mint", subject="Offer", recipients=["ann@example.org"], identity="")["data"]
    host.call("sent", tag_id=tag["id"], message_id="r1@x")
    reply = host.call("remind", tag_id=tag["id"], remind_at="2026-01-02T03:04:05.678Z")
    assert reply["data"] == {"tag_id": tag["id"], "remind_at": "2026-01-02T03:04:05.678Z", "remind_if": "not_opened"}
    assert host.call("remind", tag_id=tag["id"], remind_at="2 Jan 2026")["code"] == 60
    assert host.call("remind", tag_id="b" * 32, remind_at="2026-01-02T03:04:05.678Z")["code"] == 61
    fold(home)
    assert host.call("list", limit=5)["data"]["tags"][0]["remind_at"] == "2026-01-02T03:04:05.678Z"
    assert host.call("status", message_id="r1@x")["data"]["remind_at"] == "2026-01-02T03:04:05.678Z"
    assert read_register(home.register_path)[0]["remind_at"] == "2026-01-02T03:04:05.678Z"
    listed = run_cli("list", home=home).stdout
    assert "REMINDER" in listed and "2026-01-02 03:04 UTC (due)" in listed


def test_times_from_outside_are_bounded_and_their_offsets_honoured(host, home):
    """An ``at`` of 1e400 or of 400 digits is taken as now (no code 1), a remind_at in year 9999
    or with two offsets is refused with code 60, and one with +01:00 is kept as the UTC it names."""
    tag = host.call("mint", subject="Offer", recipients=["ann@example.org"], identity="")["data"]
    for at in (b"1e400", b"-1e400", b"1" + b"0" * 400):
        host.send_raw(b'{"id": 1, "command": "self_fetch", "tag_id": "%s", "at": %s}' % (tag["id"].encode(), at))
        assert host.read()["ok"] is True, at
    for bad in ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z",
                "2026-12-01T10:00:00+01:00Z", "2026-12-01T10:00:00"):
        reply = host.call("remind", tag_id=tag["id"], remind_at=bad)
        assert reply["code"] == 60 and "remind_at" in reply["message"], bad
    reply = host.call("remind", tag_id=tag["id"], remind_at="2026-12-01T10:00:00+01:00")
    assert reply["data"]["remind_at"] == "2026-12-01T09:00:00.000Z"


def test_links_whose_reply_is_over_the_frame_limit_are_refused_before_anything_is_noted(host, home):
    """200 links of 4 KB hrefs make a reply of megabytes: refused with code 60, and links.csv
    holds nothing for the tag (it was written before the reply was refused)."""
    tag = host.call("mint", subject="Offer", recipients=["ann@example.org"], identity="")["data"]
    links = [{"target": "https://shop.example.org/" + "é" * 670, "text": "the offer"}] * 200
    reply = host.call("links", tag_id=tag["id"], links=links)
    assert tag["id"] not in (home.links_path.read_text("utf-8") if home.links_path.exists() else "")
    assert reply["ok"] is False and reply["code"] == 60 and "nothing was noted" in reply["message"]
    assert host.call("links", tag_id=tag["id"], links=links[:5])["ok"] is True
    assert tag["id"] in home.links_path.read_text("utf-8")


def test_a_subscribed_host_pushes_changed_saying_whether_it_folds(host, home):
    """subscribe starts the daemon (this host folds: no tray runs); each change it folds is pushed
    as an event that says whether this host still folds and whether a tray runs."""
    import select

    from mailtracker.desktop.tags import mint_tag

    assert host.call("subscribe")["data"] == {"folding": True, "tray": False}
    mint_tag(home, load_config(home), name="Ann", subject="Offer")
    ready, _, _ = select.select([host.proc.stdout], [], [], 20)
    assert ready, "no changed event within 20 s"
    assert host.read() == {"event": "changed", "data": {"folding": True, "tray": False}}


def test_subscribe_says_when_another_process_folds_and_a_tray_notifies(host, home):
    """A tray that leads (its lock held, its daemon folding): this host follows and says so, so
    the add-on leaves the notifying to the tray."""
    from mailtracker.desktop.daemon import Daemon, tray_lock_path

    tray_lock = FileLock(str(tray_lock_path(home)), timeout=0)
    with tray_lock, Daemon(home, load_config(home)):
        assert host.call("subscribe")["data"] == {"folding": False, "tray": True}


@pytest.mark.parametrize("payload, expect_id", [
    (b'{"id": "a", "command": [], "protocol": 1}', "a"),
    (b"{}", None),
    (b'{"id": "b", "command": "status", "protocol": 1, "tag_id": ["x"]}', "b"),
    (b'{"id": "c", "command": "sent", "protocol": 1, "tag_id": {"x": 1}}', "c"),
    (b'{"id": "d", "command": "status", "protocol": 1, "a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None),
    (b'{"id": "\\ud800", "command": "ping", "protocol": 1}', None),
    (b'{"id": "e", "command": "mint", "protocol": 1, "subject": "\\udfff", "recipients": []}', None),
    (b'{"id": "f", "command": "ping", "protocol": true}', "f"),
    (b'{"id": "g", "command": "ping", "protocol": 1.0}', "g"),
    (b'{"id": "' + b"x" * 300_000 + b'", "command": "ping", "protocol": 1}', None),
    (b'{"id": "h", "command": "sent", "protocol": 1, "tag_id": "=HYPERLINK(1)aaaaaaaaaaaaaaaaaaaa"}', "h"),
    (b'{"id": "i", "command": "sent", "protocol": 1, "tag_id": "' + b"b" * 32 + b'"}', "i"),
])
def test_every_hostile_frame_gets_an_error_reply_and_the_host_keeps_serving(host, home, payload, expect_id):
    """Odd types, deep nesting, lone surrogates, a protocol of true, a huge id, a forged tag id:
    a clean error reply (no traceback), nothing written, and the next request is answered."""
    tags_before = home.tags_path.read_bytes() if home.tags_path.exists() else b""
    host.send_raw(payload)
    reply = host.read()
    assert reply["ok"] is False and reply["code"] in (60, 61), reply
    assert reply["id"] == expect_id
    assert len(json.dumps(reply)) < 2000
    assert host.call("ping")["ok"]
    assert (home.tags_path.read_bytes() if home.tags_path.exists() else b"") == tags_before


def test_hostile_frames_each_get_a_reply_and_the_host_keeps_serving(host, home):
    """{}, a non-string command, tag ids that are lists or objects, deep nesting, lone surrogates,
    protocol true or 1.0, a huge id: each an error reply with code 60, no traceback, then ping works."""
    tag = host.call("mint", subject="s", recipients=["a@b.c"], identity="")["data"]
    frames = [
        b"{}", b'{"command": []}', b'{"command": {"x": 1}}', b'{"id": "a", "command": null}',
        json.dumps({"id": "b", "command": "sent", "tag_id": [tag["id"]], "protocol": 1}).encode(),
        json.dumps({"id": "c", "command": "status", "tag_id": {"id": tag["id"]}, "protocol": 1}).encode(),
        json.dumps({"id": "d", "command": "self_fetch", "tag_id": 7, "protocol": 1}).encode(),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"id": "\\ud800", "command": "ping"}',
        b'{"id": "e", "command": "mint", "subject": "\\udfff", "recipients": [], "protocol": 1}',
        b'{"id": "f", "command": "ping", "protocol": true}',
        b'{"id": "g", "command": "ping", "protocol": 1.0}',
        json.dumps({"id": "x" * 500_000, "command": "ping"}).encode(),
        json.dumps({"id": "h", "command": "sent", "tag_id": "=HYPERLINK(\"x\")" + "a" * 16,
                    "message_id": "m", "protocol": 1}).encode(),
    ]
    for frame in frames:
        host.send_raw(frame)
        reply = host.read()
        assert reply["ok"] is False and reply["code"] == 60, (frame[:60], reply)
        assert len(json.dumps(reply)) < 10_000
    assert host.call("ping")["ok"]
    assert host.call("status", tag_id=tag["id"])["data"]["tracked"]
    assert "=HYPERLINK" not in home.tags_path.read_text(encoding="utf-8-sig")
    host.proc.stdin.close()
    assert host.proc.wait(timeout=20) == 0
    assert b"Traceback" not in host.proc.stderr.read()


def test_an_unknown_but_well_formed_tag_id_is_refused_with_code_61(host, home):
    """sent, unsent and self_fetch for a tag id never minted here: error 61, no phantom row in tags.csv."""
    phantom = "a" * 32
    for command in ("sent", "unsent", "self_fetch"):
        reply = host.call(command, tag_id=phantom, message_id="m@x")
        assert (reply["ok"], reply["code"]) == (False, 61), (command, reply)
    assert not home.tags_path.exists() or phantom not in home.tags_path.read_text(encoding="utf-8-sig")


def test_status_of_a_group_answers_per_recipient(host, home):
    """Three copies minted with one group: status by one copy's Message-ID lists every
    recipient, and a fetch of one pixel marks only that recipient opened."""
    save_config(home, replace(load_config(home), delivery_window_s=0))
    group = "3f1c9a2e-5b7d-4e8a-9c0f-1a2b3c4d5e6f"
    minted = [host.call("mint", subject="Offer", recipients=[who], identity="me@example.org",
                        group=group)["data"] for who in ("ann@x.org", "bob@x.org", "cy@x.org")]
    assert all(tag["group"] == group for tag in minted)
    for number, tag in enumerate(minted):
        host.call("sent", tag_id=tag["id"], message_id=f"m{number}@x.org")
    server = PixelServer(home)
    try:
        requests.get(server.url(minted[1]["id"]), headers={"User-Agent": "Outlook-iOS/2.0"})
    finally:
        server.stop()
    fold(home)
    status = host.call("status", message_id="m0@x.org")["data"]
    assert status["group"] == group and status["opens"] == 1 and status["opened"]
    rows = {row["recipient"]: row for row in status["recipients"]}
    assert list(rows) == ["ann@x.org", "bob@x.org", "cy@x.org"]
    assert [rows[who]["opened"] for who in rows] == [False, True, False]
    assert rows["bob@x.org"]["first_open"] and rows["bob@x.org"]["device"]
    assert rows["bob@x.org"]["tag_id"] == minted[1]["id"]
    listed = host.call("list", limit=5)["data"]["tags"]
    assert {tag["group"] for tag in listed} == {group}
    assert host.call("mint", subject="s", recipients=[], identity="", group="no spaces")["ok"] is False


def test_status_of_a_group_totals_span_every_copy(host, home):
    """The group's first open is the earliest of any copy's and its last the latest, whichever
    copy is asked about and in whatever order the copies were opened (each copy opened twice)."""
    group = "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
    minted = [host.call("mint", subject="Offer", recipients=[who], identity="me@example.org",
                        group=group)["data"] for who in ("ann@x.org", "bob@x.org", "cy@x.org")]
    for number, tag in enumerate(minted):
        host.call("sent", tag_id=tag["id"], message_id=f"t{number}@x.org")
    # Hours after sending, apart enough to be separate opens: bob first, ann last, cy between.
    hours = {minted[0]["id"]: (5, 9), minted[1]["id"]: (2, 3), minted[2]["id"]: (4, 6)}
    stamps = {tag: [utc_timestamp(BASE_TIME + 3600 * h) for h in pair] for tag, pair in hours.items()}
    write_hits(home.hits_dir(load_config(home)) / "hits-pixel-2026-11-24.csv",
               [(seq, tag, "GET", stamp) for seq, (tag, stamp) in enumerate(
                   ((tag, stamp) for tag, pair in stamps.items() for stamp in pair), start=1)])
    fold(home)
    for number in range(3):
        status = host.call("status", message_id=f"t{number}@x.org")["data"]
        assert (status["opens"], status["first_open"], status["last_open"]) == (
            6, stamps[minted[1]["id"]][0], stamps[minted[0]["id"]][1]), number


def test_status_of_a_lone_tag_has_no_recipients(host, home):
    """A tag minted without a group answers as before: no group, no recipients list."""
    tag = host.call("mint", subject="s", recipients=["x@y"], identity="")["data"]
    host.call("sent", tag_id=tag["id"], message_id="lone@x")
    status = host.call("status", message_id="lone@x")["data"]
    assert status["tracked"] and "recipients" not in status and "group" not in status
