"""The fold: counts each hit once, whatever the sync tool did to the logs."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailtracker.core.csvcodec import format_row, header_line
from mailtracker.core.paths import Home
from mailtracker.core.settings import init_home, load_config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop.platforms import Platform
from mailtracker.desktop import fold as fold_module
from mailtracker.desktop.fold import STATE_VERSION, SeenHits, fold
from mailtracker.desktop.register import read_register
from mailtracker.desktop.tags import SELF_FETCH_COLUMNS, mint_tag, parse_self_fetches, record_self_fetch, update_tag
from tests.conftest import OUTLOOK, fill_disk, row_of, rows_of, run_cli, timeline_of, write_hits


@pytest.fixture
def tags(home):
    config = load_config(home)
    return [mint_tag(home, config, name=n, subject=f"about {n}") for n in ("Ann", "Bob")]


@pytest.fixture
def hits_dir(home):
    return home.hits_dir(load_config(home))


def _opens(home):
    return {row["name"]: int(row["opens"]) for row in read_register(home.register_path)}


def test_fold_counts_opens_and_first_last_open(home, tags, hits_dir):
    """GETs are opens; first/last open come from their times; HEADs are hits, not opens."""
    ann, bob = tags
    write_hits(hits_dir / "hits-a-2026-11-24.csv", [
        (1, ann.id, "GET", "2026-11-24T10:00:00.000Z"),
        (2, ann.id, "GET", "2026-11-24T09:00:00.000Z"),
        (3, ann.id, "HEAD", "2026-11-24T11:00:00.000Z"),
    ])
    result = fold(home)
    assert (result.new_hits, result.new_opens, result.new_tags) == (3, 2, 2)
    rows = {row["name"]: row for row in read_register(home.register_path)}
    assert rows["Ann"]["opens"] == "2" and rows["Ann"]["hits"] == "3"
    assert rows["Ann"]["first_open"] == "2026-11-24T09:00:00.000Z"
    assert rows["Ann"]["last_open"] == "2026-11-24T10:00:00.000Z"
    assert rows["Bob"]["opens"] == "0" and rows["Bob"]["last_open"] == ""
    assert rows["Ann"]["short_id"] == ann.id[:7] and rows["Ann"]["subject"] == "about Ann"


def test_register_has_the_promised_columns_and_bom(home, tags):
    """register.csv opens in a spreadsheet: BOM, header, the documented columns."""
    fold(home)
    raw = home.register_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfid,short_id,name,subject,recipients,created,")
    for column in ("opens", "first_open", "last_open"):
        assert column.encode() in raw.split(b"\r\n")[0]


def test_a_self_fetch_moment_alone_is_remembered(home, tags, hits_dir):
    """A send reported before any hit is kept by the fold that reads it, not read again."""
    fold(home)
    record_self_fetch(home, tags[0].id, "send", when="2026-11-24T10:00:00.000Z")
    assert fold(home).new_moments == 1
    assert fold(home).new_moments == 0


def test_folding_twice_gives_the_same_register(home, tags, hits_dir):
    """A second fold with nothing new changes nothing and rewrites nothing."""
    write_hits(hits_dir / "hits-a-2026-11-24.csv", [(1, tags[0].id, "GET")])
    fold(home)
    before = home.register_path.read_bytes()
    mtime = home.register_path.stat().st_mtime_ns
    result = fold(home)
    assert result.new_hits == 0 and not result.register_written
    assert home.register_path.read_bytes() == before
    assert home.register_path.stat().st_mtime_ns == mtime


def test_incremental_fold_counts_only_new_lines(home, tags, hits_dir):
    """Appends after a fold are counted once, on top of what was there."""
    path = hits_dir / "hits-a-2026-11-24.csv"
    write_hits(path, [(1, tags[0].id, "GET")])
    fold(home)
    write_hits(path, [(2, tags[0].id, "GET"), (3, tags[1].id, "GET")])
    assert fold(home).new_hits == 2
    assert _opens(home) == {"Ann": 2, "Bob": 1}


def test_sync_conflict_copy_and_renamed_copy_never_double_count(home, tags, hits_dir):
    """A Syncthing .sync-conflict copy or a second copy of the same hits adds nothing."""
    path = hits_dir / "hits-a-2026-11-24.csv"
    write_hits(path, [(i, tags[0].id, "GET") for i in range(1, 6)])
    fold(home)
    shutil.copy(path, hits_dir / "hits-a-2026-11-24.sync-conflict-20261124-101010-ABCDEFG.csv")
    write_hits(hits_dir / "hits-a-2026-11-24.sync-conflict-20261124-101010-ABCDEFG.csv",
               [(6, tags[0].id, "GET")])
    result = fold(home)
    assert result.new_hits == 1 and result.duplicate_hits == 5
    assert _opens(home)["Ann"] == 6


def test_rename_replace_by_a_sync_tool_is_read_from_where_it_left(home, tags, hits_dir):
    """rsync/Syncthing write a temp file and rename it over the log: only new hits count."""
    path = hits_dir / "hits-a-2026-11-24.csv"
    write_hits(path, [(1, tags[0].id, "GET")])
    fold(home)
    tmp = hits_dir / ".hits-a-2026-11-24.csv.tmp"
    shutil.copy(path, tmp)
    write_hits(tmp, [(2, tags[0].id, "GET")])
    os.replace(tmp, path)
    result = fold(home)
    assert (result.new_hits, result.duplicate_hits) == (1, 0)
    assert _opens(home)["Ann"] == 2


def test_truncated_or_rotated_file_does_not_double_count(home, tags, hits_dir):
    """A log cut short and refilled (same writer) is re-read, and old hits are skipped."""
    path = hits_dir / "hits-a-2026-11-24.csv"
    write_hits(path, [(1, tags[0].id, "GET"), (2, tags[0].id, "GET")])
    fold(home)
    path.unlink()
    write_hits(path, [(2, tags[0].id, "GET"), (3, tags[1].id, "GET")])
    result = fold(home)
    assert (result.new_hits, result.duplicate_hits) == (1, 1)
    assert _opens(home) == {"Ann": 2, "Bob": 1}


def test_half_written_last_line_is_counted_once_when_complete(home, tags, hits_dir):
    """A line cut mid-way (sync in progress) waits, then counts once it is whole."""
    path = hits_dir / "hits-a-2026-11-24.csv"
    write_hits(path, [(1, tags[0].id, "GET")])
    line = format_row(["bootaaaa.2", utc_timestamp(), tags[1].id, "GET", "1.2.3.0", "UA, x", ""]).encode()
    with open(path, "ab") as handle:
        handle.write(line[:20])
    assert fold(home).new_hits == 1
    with open(path, "ab") as handle:
        handle.write(line[20:])
    assert fold(home).new_hits == 1
    assert _opens(home) == {"Ann": 1, "Bob": 1}


def test_garbage_lines_are_skipped_and_reported(home, tags, hits_dir):
    """Unreadable hit lines and corrupt tags.csv lines are skipped, counted, and the rest folds."""
    path = hits_dir / "hits-a-2026-11-24.csv"
    write_hits(path, [(1, tags[0].id, "GET")])
    with open(path, "ab") as handle:
        handle.write(b"\x00\x00garbage\xff\r\nnot,a,hit\r\n")
    write_hits(path, [(2, tags[0].id, "GET")])
    with open(home.tags_path, "ab") as handle:
        handle.write(b"broken line without enough fields\r\n")
    result = fold(home)
    assert result.new_hits == 2 and result.skipped_lines == 3
    assert _opens(home) == {"Ann": 2, "Bob": 0}


def test_hits_for_unknown_tags_are_reported_not_lost(home, tags, hits_dir):
    """A hit for a tag not (yet) in tags.csv is kept and counts once the tag arrives."""
    stranger = "b" * 32
    write_hits(hits_dir / "hits-a-2026-11-24.csv", [(1, stranger, "GET")])
    assert fold(home).unknown_tag_hits == 1
    assert stranger not in [row.id for row in rows_of(home)]
    update_tag(home, stranger, name="Stranger", created="2026-11-24T09:00:00.000Z")
    fold(home)
    assert row_of(home, stranger)["opens"] == 1


def test_later_tag_rows_update_status_and_message_id(home, tags):
    """tags.csv stays append-only: a later row for a tag fills in its Message-ID and status,
    also when it arrives in a fold of its own."""
    fold(home)
    update_tag(home, tags[0].id, message_id="<abc@example.org>", status="sent")
    assert fold(home).register_written
    assert row_of(home, tags[0].id)["message_id"] == "<abc@example.org>"
    row = {r["name"]: r for r in read_register(home.register_path)}["Ann"]
    assert (row["message_id"], row["status"]) == ("<abc@example.org>", "sent")


def test_rebuild_from_logs_alone_equals_the_incremental_result(home, tags, hits_dir):
    """Deleting all fold state and rebuilding gives the same register."""
    path = hits_dir / "hits-a-2026-11-24.csv"
    for seq in range(1, 20):
        write_hits(path, [(seq, tags[seq % 2].id, "GET")])
        fold(home)
    incremental = home.register_path.read_bytes()
    shutil.rmtree(home.state_dir)
    home.register_path.unlink()
    fold(home, rebuild=True)
    assert home.register_path.read_bytes() == incremental


def test_a_permission_problem_is_not_blamed_on_a_spreadsheet(home, tags, hits_dir):
    """On Linux a register that cannot be replaced is a permissions problem: said so, and
    'rebuild' then exits with the register's code instead of claiming success."""
    write_hits(hits_dir / "hits-a-2026-11-24.csv", [(1, tags[0].id, "GET")])
    home.data_dir.chmod(0o500)
    try:
        if os.access(home.data_dir, os.W_OK):
            pytest.skip("running as a user whom permissions do not stop (root)")
        result = fold(home)
        assert "open in another program" not in result.register_error
        assert "Permission denied" in result.register_error and "1 new opens are kept" in result.register_error
    finally:
        home.data_dir.chmod(0o700)


def test_rebuild_that_cannot_write_the_register_says_so_and_fails(home, tags, hits_dir):
    """'rebuild' with register.csv not replaceable exits 40 and does not say 'Rebuilt'."""
    write_hits(hits_dir / "hits-a-2026-11-24.csv", [(1, tags[0].id, "GET")])
    home.register_path.mkdir()  # a folder in its place: no file can replace it
    proc = run_cli("rebuild", home=home, check=False)
    assert proc.returncode == 40, proc.stdout + proc.stderr
    assert "Rebuilt" not in proc.stdout and "register.csv was not written" in proc.stdout


def test_register_held_by_excel_on_simulated_windows_keeps_the_counts(home, tags, hits_dir):
    """(Windows simulated through the Platform seam: its os.replace refuses a register.csv
    that Excel holds open, as Windows does, with WinError 32.) The fold says the file is
    open elsewhere and the new open is kept; the register is left as it was; the first
    fold after Excel lets go writes it with the count, and no hit is counted twice."""
    write_hits(hits_dir / "hits-a-2026-11-24.csv", [(1, tags[0].id, "GET")])
    fold(home)
    before = home.register_path.read_bytes()
    write_hits(hits_dir / "hits-a-2026-11-24.csv", [(2, tags[0].id, "GET")])

    def held_by_excel(src, dst):
        if Path(dst).name == "register.csv":
            raise PermissionError(13, "The process cannot access the file because it is being used "
                                  "by another process", str(dst), 32)
        os.replace(src, dst)

    windows = replace(Platform.current(), key="win32", replace=held_by_excel)
    result = fold(home, platform=windows)
    assert "register.csv is open in another program" in result.register_error
    assert "1 new opens are kept" in result.register_error and not result.register_written
    assert home.register_path.read_bytes() == before
    assert [p.name for p in home.data_dir.iterdir() if p.name.endswith(".tmp")] == []
    result = fold(home, platform=windows)  # Excel still has it: still kept, nothing new
    assert "open in another program" in result.register_error and result.new_hits == 0
    result = fold(home, platform=replace(windows, replace=os.replace))  # Excel closed it
    assert result.register_written and result.new_hits == 0
    assert _opens(home)["Ann"] == 2


def test_a_fold_killed_at_any_point_leaves_a_correct_state(home, tags, hits_dir):
    """kill -9 of folds at random moments, then one more fold: every hit counted exactly once."""
    total = 60_000
    path = hits_dir / "hits-a-2026-11-24.csv"
    write_hits(path, [(seq, tags[seq % 2].id, "GET") for seq in range(1, total + 1)])
    # The child says when it holds the fold lock, so every kill lands inside a fold.
    script = ("import sys\nfrom mailtracker.core.paths import Home\nfrom mailtracker.desktop import fold\n"
              "inner = fold._fold_locked\n"
              "def announced(*args):\n    print('folding', flush=True)\n    return inner(*args)\n"
              "fold._fold_locked = announced\nfold.fold(Home.locate(sys.argv[1]))\n")
    interrupted = 0
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2):
        proc = subprocess.Popen([sys.executable, "-c", script, str(home.data_dir)], stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"folding\n"
        time.sleep(delay)  # not a wait for an event: the point is to kill at arbitrary moments of it
        interrupted += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        write_hits(path, [(total + int(delay * 100) + 1, tags[0].id, "GET")])
    assert interrupted >= 3, "the folds ended before they could be killed: make the history longer"
    fold(home)
    opens = _opens(home)
    assert opens["Ann"] + opens["Bob"] == total + 5


def test_a_first_fold_killed_before_it_commits_leaves_no_store_and_the_next_counts_all(home, tags, hits_dir):
    """The first fold builds its store aside and renames it into place when it commits: killed
    just before (its rows, timelines and state all written), readers find no store (nothing
    folded yet, not an error), and the next fold counts every hit once."""
    path = hits_dir / "hits-a-2026-11-24.csv"
    write_hits(path, [(seq, tags[seq % 2].id, "GET") for seq in range(1, 101)])
    script = ("import os, signal, sys\nfrom mailtracker.core.paths import Home\n"
              "from mailtracker.desktop import fold, view\n"
              "view.ViewWriter.commit = lambda self: os.kill(os.getpid(), signal.SIGKILL)\n"
              "fold.fold(Home.locate(sys.argv[1]))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(home.data_dir)], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (home.state_dir / "view.sqlite3.new").exists(), "killed after the pass wrote its store aside"
    assert not (home.state_dir / "view.sqlite3").exists()
    assert rows_of(home) == []  # nothing folded yet: no error for a reader
    fold(home)
    assert _opens(home) == {"Ann": 50, "Bob": 50}
    assert not (home.state_dir / "view.sqlite3.new").exists()


def test_seen_hits_records_each_id_once_in_any_order():
    """The compact seen-set answers correctly for in-order, out-of-order and repeated ids."""
    seen = SeenHits()
    order = [5, 1, 2, 3, 9, 7, 8, 4, 6, 10, 2, 9, 5]
    fresh = [seen.add("b", n) for n in order]
    assert fresh == [True] * 10 + [False] * 3
    assert seen.runs["b"] == [[1, 10]]
    assert seen.add("other", 1)


def _fold_state_core(home):
    db = sqlite3.connect(str(home.state_dir / "view.sqlite3"))
    try:
        return json.loads(db.execute("SELECT value FROM fold_state WHERE key = 'core'").fetchone()[0])
    finally:
        db.close()


def test_fold_state_survives_a_corrupt_state(home, tags, hits_dir):
    """A damaged fold state is rebuilt from the logs, not trusted and not fatal."""
    write_hits(hits_dir / "hits-a-2026-11-24.csv", [(1, tags[0].id, "GET")])
    fold(home)
    db = sqlite3.connect(str(home.state_dir / "view.sqlite3"))
    with db:
        db.execute("UPDATE fold_state SET value = '{not json' WHERE key = 'core'")
    db.close()
    fold_module._KEPT.clear()  # as another process would: reading the state back
    fold(home)
    assert _opens(home)["Ann"] == 1
    assert _fold_state_core(home)["version"] == STATE_VERSION


def test_a_home_of_the_json_fold_state_counts_its_logs_again_once(home, tags, hits_dir):
    """A home an older version folded (fold-state.json, a read model of schema 1) upgrades by
    itself: its logs are counted again into the new store, once, and the old file goes."""
    write_hits(hits_dir / "hits-a-2026-11-24.csv", [(1, tags[0].id, "GET"), (2, tags[1].id, "GET")])
    fold(home)
    expected = home.register_path.read_bytes()
    db = sqlite3.connect(str(home.state_dir / "view.sqlite3"))
    db.execute("PRAGMA user_version = 1")  # as the older version left it
    db.close()
    (home.state_dir / "fold-state.json").write_text('{"version": 8, "counts": {}}')
    fold_module._KEPT.clear()
    result = fold(home)
    assert result.new_hits == 2 and result.register_written
    assert home.register_path.read_bytes() == expected
    assert row_of(home, tags[0].id)["opens"] == 1
    assert not (home.state_dir / "fold-state.json").exists()


def test_sender_thunderbird_fetch_near_a_send_is_self_not_an_open(home, tags, hits_dir):
    """A Thunderbird fetch within the window after a send or display is labelled self."""
    ann = tags[0]
    record_self_fetch(home, ann.id, "send", when="2026-11-24T10:00:00.000Z")
    path = hits_dir / "hits-a-2026-11-24.csv"
    write_hits(path, [(1, ann.id, "GET", "2026-11-24T10:00:01.500Z")])
    write_hits(path, [(2, ann.id, "GET", "2026-11-24T10:01:00.000Z")], agent=OUTLOOK)
    write_hits(path, [(3, ann.id, "GET", "2026-11-24T12:00:00.000Z")])
    fold(home)
    row = {r["name"]: r for r in read_register(home.register_path)}["Ann"]
    assert (row["opens"], row["self_hits"], row["hits"]) == ("2", "1", "3")
    assert row["first_open"] == "2026-11-24T10:01:00.000Z"
    timeline = timeline_of(home, ann.id)
    assert [event[1] for event in timeline] == ["self", "open", "open"]


def _odd_entries(hits_dir, outside):
    """A FIFO, a folder, a symlink to /dev/zero and one to a regular file outside, all named like hits files."""
    os.mkfifo(hits_dir / "hits-fifo-2026-11-24.csv")
    (hits_dir / "hits-dir-2026-11-24.csv").mkdir()
    os.symlink("/dev/zero", hits_dir / "hits-zero-2026-11-24.csv")
    write_hits(outside, [(1, "x" * 32, "GET")], boot="outside1")
    os.symlink(outside, hits_dir / "hits-link-2026-11-24.csv")
    return sorted(["hits-dir-2026-11-24.csv", "hits-fifo-2026-11-24.csv",
                   "hits-link-2026-11-24.csv", "hits-zero-2026-11-24.csv"])


def test_odd_entries_in_the_hits_folder_are_skipped_and_named(home, tags, hits_dir, tmp_path, caplog):
    """Only regular files are folded: a FIFO, a folder and symlinks are skipped, named, warned about once."""
    ann, _ = tags
    hits_dir.mkdir(parents=True, exist_ok=True)
    write_hits(hits_dir / "hits-a-2026-11-24.csv", [(1, ann.id, "GET")])
    odd = _odd_entries(hits_dir, tmp_path / "elsewhere.csv")
    proc = subprocess.run([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "fold"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "skipped 4 entries of the hits folder that are not regular files" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert all(proc.stderr.count(f"skipped {name} ") == 1 for name in odd), proc.stderr
    assert row_of(home, ann.id)["opens"] == 1 and row_of(home, "x" * 32)["hits"] == 0
    with caplog.at_level("WARNING", logger="mailtracker.desktop.fold"):
        write_hits(hits_dir / "hits-a-2026-11-24.csv", [(2, ann.id, "GET")])
        result = fold(home)
        assert result.skipped_entries == odd and result.new_opens == 1
        assert "not regular files" in result.summary()
    assert not [r for r in caplog.records if "not a regular file" in r.getMessage()]


def test_a_20_mb_line_is_skipped_quickly_and_the_hits_around_it_count(home, tags, hits_dir):
    """A hit line with a 20 MB user agent (no server writes one) is skipped unparsed, in well under the lock's patience."""
    ann, _ = tags
    path = hits_dir / "hits-a-2026-11-24.csv"
    write_hits(path, [(1, ann.id, "GET")])
    write_hits(path, [(2, ann.id, "GET")], agent="A" * 20_000_000)
    write_hits(path, [(3, ann.id, "GET")])
    started = time.monotonic()
    result = fold(home)
    assert time.monotonic() - started < 10
    assert (result.new_hits, result.skipped_lines) == (2, 1)
    assert row_of(home, ann.id)["opens"] == 2


def test_a_log_beside_the_hits_that_cannot_be_read_stops_the_fold_and_loses_nothing(home, tags, hits_dir):
    """self-fetches.csv unreadable (here a folder in its place; it is read beside the hits):
    the fold says which file and why, writes no counts, and counts everything once it is back."""
    write_hits(hits_dir / "hits-a-2026-11-24.csv", [(1, tags[0].id, "GET")])
    home.self_fetches_path.unlink(missing_ok=True)
    home.self_fetches_path.mkdir()
    with pytest.raises(OSError) as error:
        fold(home)
    assert "self-fetches.csv" in str(error.value)
    assert not home.register_path.exists()
    home.self_fetches_path.rmdir()
    assert fold(home).new_opens == 1 and _opens(home) == {"Ann": 1, "Bob": 0}


def test_a_process_that_folds_again_goes_on_from_its_own_state_unless_another_folded(home, tags, hits_dir):
    """A daemon folds pass after pass without reading its state back; when another process
    ('mailtracker fold' here) folded in between, it reads that one's state: nothing twice."""
    path = hits_dir / "hits-a-2026-11-24.csv"
    write_hits(path, [(1, tags[0].id, "GET")])
    fold(home)
    kept = fold_module._KEPT[str(home.state_dir / "view.sqlite3")].state
    write_hits(path, [(2, tags[0].id, "GET")], header=False)
    assert fold(home).new_opens == 1
    assert fold_module._KEPT[str(home.state_dir / "view.sqlite3")].state is kept, "went on from its own"
    assert _opens(home) == {"Ann": 2, "Bob": 0}
    write_hits(path, [(3, tags[0].id, "GET"), (4, tags[1].id, "GET")], header=False)
    run_cli("fold", home=home)  # another process counts 3 and 4
    write_hits(path, [(5, tags[1].id, "GET")], header=False)
    result = fold(home)
    assert (result.new_hits, result.duplicate_hits) == (1, 0)
    assert _opens(home) == {"Ann": 3, "Bob": 2}
    # The register it wrote from the lines it kept is the one the logs alone give.
    written = home.register_path.read_bytes()
    fold(home, rebuild=True)
    assert home.register_path.read_bytes() == written


def test_a_pass_that_fails_half_way_leaves_nothing_half_counted_for_the_next(home, tags, hits_dir, monkeypatch):
    """A pass that stops in the middle (here the judge fails on the second hit, after the first
    was counted in memory): the next pass starts from the saved state and counts each hit once."""
    from mailtracker.desktop.classify import Judge

    write_hits(hits_dir / "hits-a-2026-11-24.csv", [(1, tags[0].id, "GET")])
    fold(home)
    write_hits(hits_dir / "hits-a-2026-11-24.csv", [(2, tags[0].id, "GET"), (3, tags[0].id, "GET")], header=False)
    real, calls = Judge.judge, []

    def failing(self, hit, recent):
        calls.append(hit)
        if len(calls) == 2:
            raise RuntimeError("the disk went away")
        return real(self, hit, recent)

    monkeypatch.setattr(Judge, "judge", failing)
    with pytest.raises(RuntimeError):
        fold(home)
    monkeypatch.setattr(Judge, "judge", real)
    assert fold(home).new_opens == 2 and _opens(home)["Ann"] == 3


def test_a_timeline_keeps_its_latest_events_pass_after_pass(home, tags, hits_dir):
    """Hits folded a few at a time, past the length a timeline keeps: it holds exactly the
    latest ones, in order, the same as a rebuild from the logs gives, whatever a client's
    name holds (a bracket, a quote, a comma: the store joins timelines by their text)."""
    from mailtracker.desktop.view import TIMELINE_LENGTH

    path = hits_dir / "hits-a-2026-11-24.csv"
    odd = 'Fo"o,1],["/1.0'  # a client whose name ends as if another event began
    seq = 0
    for batch in range(TIMELINE_LENGTH // 7 + 3):
        hits = [(seq + n + 1, tags[0].id, "GET") for n in range(7)]
        write_hits(path, hits, header=batch == 0, agent=odd if batch % 2 else OUTLOOK)
        seq += 7
        fold(home)
    folded = timeline_of(home, tags[0].id)
    times = [utc_timestamp(1_795_000_000 + n * 120) for n in range(seq - TIMELINE_LENGTH + 1, seq + 1)]
    assert len(folded) == TIMELINE_LENGTH and [event[0] for event in folded] == times
    assert {event[4] for event in folded} == {"Outlook", 'Fo"o,1],["'}
    fold(home, rebuild=True)
    assert timeline_of(home, tags[0].id) == folded


def test_a_fold_on_a_full_disk_says_so_and_list_never_says_there_is_nothing(tiny_disk):
    """On a real full disk (a small tmpfs) fold exits 32 with a plain message, list says the
    read model cannot be read (not "No tags yet"), and with space back both work again."""
    from mailtracker.core.paths import Home
    from mailtracker.core.settings import init_home

    home = Home.locate(str(tiny_disk / "home"))
    init_home(home)
    for name in ("Ann", "Bob"):
        mint_tag(home, load_config(home), name=name, subject="Offer", recipients="x@example.org")
    filler = fill_disk(tiny_disk)
    folded = run_cli("fold", home=home, check=False)
    assert folded.returncode == 32 and "Traceback" not in folded.stderr
    assert "cannot write the read model" in folded.stderr and "full" in folded.stderr
    listed = run_cli("list", home=home, check=False)
    assert "No tags yet" not in listed.stdout and "Traceback" not in listed.stderr
    assert listed.returncode == 32 and "cannot read the read model" in listed.stderr
    filler.unlink()
    run_cli("fold", home=home)
    # Minted in the same millisecond, the two may stand either way round (by id).
    assert sorted(row["name"] for row in json.loads(run_cli("list", "--json", home=home).stdout)) == ["Ann", "Bob"]


def _moments_one_by_one(home, state, result, judge):
    """The self-fetch moments folded one by one, as each row of the logs says it: the reference
    for ``_fold_self_fetches``, which does the per-tag work once per tag."""
    for batch, columns, device in fold_module._new_log_data(home, "self-fetches", state, SELF_FETCH_COLUMNS):
        other = device and device != home.device
        for tag_id, moment, reason in parse_self_fetches(batch, columns):
            moments = state.moments.setdefault(tag_id, [])
            if [moment, reason] in moments:
                continue
            moments.append([moment, reason])
            state.dirty.add(tag_id)
            if other and not result.recount:
                result.recount = fold_module._counted_since(state.counts.get(tag_id), moment)
            judge.forget_context(tag_id)
            result.new_moments += 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 12), st.sampled_from(["send", "display"]),
                          st.sampled_from(["", "desk-aaaaaa", "laptop-bbbbbb", "laptop-bbbbbb copy"])), max_size=40),
       st.dictionaries(st.integers(0, 3), st.lists(st.tuples(st.integers(0, 12), st.sampled_from(["send", "display"])),
                                                   max_size=12)),
       st.dictionaries(st.integers(0, 3), st.one_of(st.sampled_from(["", "not a time"]),
                                                    st.integers(-10, 20).map(lambda s: utc_timestamp(1_795_000_000 + s)))))
# Another computer's send and display of a mail opened between the two: what the send labels
# was counted (count the history again), what the display labels was not.
@example(rows=[(0, 0, "send", "laptop-bbbbbb"), (0, 12, "display", "laptop-bbbbbb")], held={},
         opened={0: utc_timestamp(1_795_000_002)})
def test_self_fetch_moments_fold_per_tag_as_one_by_one(tmp_path_factory, rows, held, opened):
    """Moments from this computer's log, another computer's and a conflict copy, again and again,
    over tags that hold many already: the same moments in the same order, the same tags to
    label again, the same count and the same call to count the history again as row by row."""
    from mailtracker.core.paths import DEVICES_DIR
    from mailtracker.desktop.classify import Judge, Rules
    from mailtracker.desktop.counts import Counts

    home = Home.locate(str(tmp_path_factory.mktemp("home")))
    init_home(home)
    (home.data_dir / DEVICES_DIR).mkdir()
    home.device_path.write_text("desk-aaaaaa")
    tag_ids = [chr(ord("a") + n) * 32 for n in range(4)]
    logs = {}
    for tag, second, reason, device in rows:
        path = home.legacy_log_path("self-fetches") if not device else \
            home.data_dir / DEVICES_DIR / ("self-fetches-laptop-bbbbbb.sync-conflict-1.csv" if device.endswith("copy")
                                           else f"self-fetches-{device}.csv")
        logs.setdefault(path, []).append([tag_ids[tag], utc_timestamp(1_795_000_000 + second), reason])
    for path, lines in logs.items():
        path.write_bytes(header_line(SELF_FETCH_COLUMNS) + b"".join(format_row(line).encode() for line in lines))
    config = load_config(home)
    outcomes = []
    for fold_moments in (fold_module._fold_self_fetches, _moments_one_by_one):
        state, result = fold_module._FoldState(), fold_module.FoldResult()
        for tag, moments in held.items():
            state.moments[tag_ids[tag]] = [[1_795_000_000.0 + second, reason] for second, reason in moments]
        for tag, last_open in opened.items():
            state.counts[tag_ids[tag]] = Counts(opens=1, last_open=last_open)
        judge = Judge(Rules.of(config), None, state.moments)
        reported = {tag: judge.send_reported(tag) for tag in tag_ids}  # kept until its moments change
        fold_moments(home, state, result, judge)
        outcomes.append((list(state.moments.items()), state.dirty, result.new_moments, result.recount,
                         {tag: judge.send_reported(tag) for tag in tag_ids}))
        assert outcomes[-1][4] == {tag: any(reason == "send" for _, reason in state.moments.get(tag, ()))
                                   for tag in tag_ids}, reported
    assert outcomes[0] == outcomes[1]
