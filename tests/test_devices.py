"""One person, several computers: two homes on one machine stand for two computers, each
with its own device id, writing only its own logs in its devices folder and reading
everyone's; between them the devices folder travels by a real Syncthing pair (or, in the
quick tests, is placed by hand as a sync tool leaves it)."""

import os
import shutil
import threading
import time

import pytest
import requests

from mailtracker.core.paths import DeviceLog, Home, device_log_name
from mailtracker.core.settings import init_home, load_config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop.devices import heard_from, join
from mailtracker.desktop.fold import fold
from mailtracker.desktop.marks import Marks
from mailtracker.desktop.notifications import Notifier
from mailtracker.desktop.tags import find_tag, mint_tag, record_self_fetch, update_tag
from mailtracker.desktop.watcher import Watcher
from tests.conftest import AGENT, PixelServer, rows_of, run_cli, wait_for, write_hits
from tests.syncthing_pair import DevicesPair
from tests.tools import require_tool

# A Syncthing pair with fsWatcherDelayS=1 carries a small change in about 1-3 s.
SYNC_BOUND_S = 20.0
CONFLICT = ".sync-conflict-20261207-013500-ABCDEFG"


def _computer(root, name: str, hits_dir, secret_from: Home = None) -> Home:
    """A home standing for one of the person's computers: its own folders, the shared hits."""
    home = Home.locate(str(root / name))
    init_home(home, hits_dir=str(hits_dir))
    if secret_from is not None:  # the person's computers share the secret, as their server does
        shutil.copy(secret_from.secret_path, home.secret_path)
    return home


@pytest.fixture
def two(tmp_path):
    """Two computers of one person, with one hits folder standing for the hits both receive."""
    hits = tmp_path / "hits"
    hits.mkdir()
    laptop = _computer(tmp_path, "laptop", hits)
    desk = _computer(tmp_path, "desk", hits, secret_from=laptop)
    return laptop, desk, hits


def _register(home: Home) -> bytes:
    fold(home)
    return home.register_path.read_bytes()


def _deliver(source: Home, target: Home) -> None:
    """What a sync tool does: each of the source's logs, in full, into the target's devices folder."""
    target.devices_dir.mkdir(parents=True, exist_ok=True)
    for path in source.devices_dir.glob("*.csv"):
        temp = target.devices_dir / f".{path.name}.tmp"
        shutil.copyfile(path, temp)
        os.replace(temp, target.devices_dir / path.name)


def test_joining_moves_a_single_computer_home_and_changes_no_count(home):
    """An old home's tags.csv and self-fetches.csv move under the new device id; the register
    is the same, new tags go to the device's log, and 'devices list' and doctor name the computer."""
    config = load_config(home)
    tag = mint_tag(home, config, name="Ann", subject="Old mail")
    record_self_fetch(home, tag.id, "send", "2026-11-24T09:00:00.000Z")
    write_hits(home.hits_dir(config) / "hits-a-2026-11-24.csv", [(1, tag.id, "GET", "2026-11-24T10:00:00.000Z")],
               agent=AGENT)
    before = _register(home)
    assert home.device == "" and home.tags_path == home.data_dir / "tags.csv"
    joined = join(home, hostname="Work-Laptop.local")
    assert joined.device.startswith("worklaptop-") and joined.moved == ["tags.csv", "self-fetches.csv"]
    assert not (home.data_dir / "tags.csv").exists()
    assert home.tags_path == home.devices_dir / f"tags-{joined.device}.csv"
    assert join(home).device == joined.device and not join(home).created
    assert _register(home) == before
    new = mint_tag(home, config, name="Bob")
    assert find_tag(home, new.id) and find_tag(home, tag.id)[1]["subject"] == "Old mail"
    assert [row.opens for row in rows_of(home) if row.id == tag.id] == [1]
    assert [c.device for c in heard_from(home)] == [joined.device] and heard_from(home)[0].this
    listed = run_cli("devices", "list", home=home).stdout
    assert f"computer {joined.device} (this computer): last wrote 20" in listed
    assert f"computer {joined.device} (this computer)" in run_cli("doctor", home=home, check=False).stdout


def test_a_row_written_to_the_old_log_after_joining_is_counted_and_moved_by_the_next_join(home):
    """A host started before 'devices join' may still append to tags.csv: the fold reads it,
    doctor says so, and joining again moves its rows to the device's log, none lost or doubled."""
    config = load_config(home)
    first = mint_tag(home, config, name="Before")
    device = join(home).device
    unjoined = Home(data_dir=home.data_dir, config_dir=home.data_dir / "as-before-joining")
    unjoined.config_dir.mkdir()
    shutil.copy(home.secret_path, unjoined.secret_path)  # a process that sees no device id
    late = mint_tag(unjoined, config, name="Late")
    assert (home.data_dir / "tags.csv").exists()  # the old host's row (its home had no id yet)
    assert {first.id, late.id} <= {row.id for row in (fold(home), rows_of(home))[1]}
    before = _register(home)
    assert "tags.csv was written after this computer joined" in run_cli("doctor", home=home, check=False).stdout
    assert join(home).moved == ["tags.csv"] and not (home.data_dir / "tags.csv").exists()
    assert find_tag(home, late.id) and find_tag(home, first.id)
    assert _register(home) == before and fold(home).new_tags == 0
    assert home.tags_path.name == f"tags-{device}.csv"


def test_a_conflict_copy_and_a_log_delivered_twice_change_nothing(two):
    """The desk gets the laptop's logs; then the same logs again, and a Syncthing conflict copy
    holding an older state of them plus one row only the copy has: the tag sent on the laptop
    stays sent, nothing counts twice, and the copy's own row is not lost."""
    laptop, desk, hits = two
    join(laptop)
    join(desk)
    config = load_config(laptop)
    tag = mint_tag(laptop, config, name="Ann", subject="Offer")
    record_self_fetch(laptop, tag.id, "send", "2026-11-24T09:00:00.000Z")
    older = laptop.tags_path.read_bytes()  # what the copy holds: before the send
    update_tag(laptop, tag.id, message_id="<offer@example.org>", status="sent")
    write_hits(hits / "hits-a-2026-11-24.csv", [(1, tag.id, "GET", "2026-11-24T10:00:00.000Z"),
                                              (2, tag.id, "GET", "2026-11-24T12:00:00.000Z")], agent=AGENT)
    _deliver(laptop, desk)
    first = _register(desk)
    assert first == _register(laptop)
    [row] = [row for row in rows_of(desk) if row.id == tag.id]
    assert row.status == "sent" and row.opens == 2

    _deliver(laptop, desk)  # delivered twice
    assert fold(desk).new_tags == 0 and _register(desk) == first

    scratch = _computer(hits.parent, "scratch", hits, secret_from=laptop)
    extra = mint_tag(scratch, config, name="Only in the copy")  # a row that only the copy holds
    copy_row = scratch.tags_path.read_bytes().splitlines(keepends=True)[-1]
    (desk.devices_dir / f"tags-{laptop.device}{CONFLICT}.csv").write_bytes(older + copy_row)
    result = fold(desk)
    assert result.new_tags == 1 and result.skipped_lines == 0
    [row] = [row for row in rows_of(desk) if row.id == tag.id]
    assert row.status == "sent" and row.message_id == "<offer@example.org>" and row.opens == 2
    assert extra.id in {row.id for row in rows_of(desk)}
    # the laptop gets the desk's logs and the copy too: both end with the same register
    _deliver(desk, laptop)
    assert _register(laptop) == _register(desk)
    assert sum(computer.conflict_copies for computer in heard_from(desk)) == 1


def test_a_running_watcher_folds_the_other_computers_logs_once_this_one_joins(two):
    """The desk's daemon runs before 'devices join': after it, the laptop's logs arriving in
    the new devices folder are folded without a restart."""
    laptop, desk, _ = two
    folds = []
    woke = threading.Event()

    def folded(result):
        folds.append(result)
        woke.set()

    with Watcher(desk, load_config(desk), on_fold=folded):
        wait_for(lambda: folds, what="the first fold")
        woke.clear()
        join(desk)
        assert woke.wait(5), "joining (a new devices folder) did not wake the fold"
        join(laptop)
        tag = mint_tag(laptop, load_config(laptop), name="From the laptop")
        _deliver(laptop, desk)
        wait_for(lambda: tag.id in {row.id for row in rows_of(desk)}, timeout=5,
                 what="the laptop's tag in the desk's read model")


def test_a_moment_arriving_after_its_hit_counts_the_history_again(two):
    """The laptop shows a copy of its tracked mail and its own Thunderbird fetches the pixel; the
    desk gets the hit before the laptop's 'display' moment and counts an open; when the moment
    arrives the desk counts again and agrees with the laptop: the sender's own fetch, no open."""
    laptop, desk, hits = two
    join(laptop)
    join(desk)
    tag = mint_tag(laptop, load_config(laptop), name="Ann")
    _deliver(laptop, desk)
    now = utc_timestamp()
    write_hits(hits / "hits-a-2026-12-07.csv", [(1, tag.id, "GET", now)])  # Thunderbird's agent
    fold(desk)
    assert [row.opens for row in rows_of(desk) if row.id == tag.id] == [1]
    record_self_fetch(laptop, tag.id, "display", now)
    _deliver(laptop, desk)
    assert fold(desk).recount
    [row] = [row for row in rows_of(desk) if row.id == tag.id]
    assert row.opens == 0 and row.self_hits == 1
    assert _register(desk) == _register(laptop)
    assert not fold(desk).recount  # counted again once, not at every pass


def test_file_names_of_the_devices_folder():
    """Each log's name says its kind and computer; a conflict copy is known as one; others are not logs."""
    assert DeviceLog.parse(device_log_name("self-fetches", "desk-abcdef")) == \
        DeviceLog("self-fetches", "desk-abcdef", False)
    copy = DeviceLog.parse(f"replies-desk-abcdef{CONFLICT}.csv")
    assert copy == DeviceLog("replies", "desk-abcdef", True) and copy.main_name == "replies-desk-abcdef.csv"
    for other in ("tags.csv", "tags-desk-abcdef.csv.lock", "hits-desk-abcdef.csv", "tags-desk.csv",
                  ".tags-desk-abcdef.csv.tmp", "tags-desk-abcdef (1).csv"):
        assert DeviceLog.parse(other) is None, other


def test_history_from_another_computer_is_quiet_and_a_new_open_notifies_once(two):
    """The desk's notifier: the laptop's old opens arriving late are history, not news; an open
    of the laptop's mail made now notifies once, and does not again when more logs arrive."""
    laptop, desk, hits = two
    join(laptop)
    join(desk)
    config = load_config(laptop)
    old = mint_tag(laptop, config, name="Old")
    fresh = mint_tag(laptop, config, name="Fresh")
    write_hits(hits / "hits-a-2026-11-24.csv", [(1, old.id, "GET", "2026-11-24T10:00:00.000Z")], agent=AGENT)
    notifier = Notifier(Marks())
    fold(desk)
    notifier.observe(rows_of(desk), 0.0)  # the desk's first fold: its baseline
    write_hits(hits / "hits-a-2026-11-24.csv", [(2, fresh.id, "GET", utc_timestamp())], agent=AGENT)
    _deliver(laptop, desk)
    fold(desk)
    notifier.observe(rows_of(desk), 100.0)
    notice = notifier.take(100.0)
    assert notice is not None and notice.tag_ids == (fresh.id,)
    update_tag(laptop, fresh.id, status="sent")
    _deliver(laptop, desk)
    fold(desk)
    notifier.observe(rows_of(desk), 2000.0)
    assert notifier.take(2000.0) is None


@pytest.fixture
def syncthing_pair(two, tmp_path):
    """The two computers' devices folders joined by a real Syncthing pair (started by the test)."""
    require_tool("syncthing", "syncthing")
    laptop, desk, _ = two
    pair = DevicesPair(tmp_path / "syncthing", laptop.devices_dir, desk.devices_dir)
    yield pair
    pair.stop()


def _holds(home: Home, other: Home) -> bool:
    """Whether ``home``'s devices folder has every log of ``other`` as it is there."""
    for path in other.devices_dir.glob("*.csv"):
        copy = home.devices_dir / path.name
        if not copy.exists() or copy.read_bytes() != path.read_bytes():
            return False
    return True


@pytest.mark.slow
def test_two_computers_over_real_syncthing_show_the_same_mail_with_the_same_counts(two, syncthing_pair):
    """Tags minted on both computers, one of them paired late with its own history, hits from a
    real pixel server for all: both registers end byte for byte the same, the send moment of the
    laptop labels the desk's hits too, and a log written again or copied as a conflict changes nothing."""
    laptop, desk, hits = two
    config = load_config(laptop)
    # The laptop's history as a single computer, then it joins and keeps going.
    sent = mint_tag(laptop, config, name="Ann", subject="Old offer")
    record_self_fetch(laptop, sent.id, "send", "2026-11-24T09:00:00.000Z")
    update_tag(laptop, sent.id, message_id="<old@example.org>", status="sent")
    join(laptop)
    after_join = mint_tag(laptop, config, name="Bob", subject="New offer")
    # The desk has its own history too, before it is paired: it joins, then Syncthing starts.
    own = mint_tag(desk, config, name="Cy", subject="From the desk")
    join(desk)
    server = PixelServer(laptop, "--server-id", "px", hits_dir=hits)
    try:
        for tag in (sent, after_join, own):
            assert requests.get(server.url(tag.id), headers={"User-Agent": AGENT}).ok
        wait_for(lambda: len(server.hit_lines()) == 3, what="three hits")
        fold(laptop)
        fold(desk)
        assert {row.id for row in rows_of(laptop)} == {sent.id, after_join.id}

        syncthing_pair.start()
        wait_for(lambda: _holds(desk, laptop) and _holds(laptop, desk), timeout=SYNC_BOUND_S,
                 what="each computer holding the other's logs")
        assert _register(laptop) == _register(desk)
        rows = {row.id: row for row in rows_of(desk)}
        assert set(rows) == {sent.id, after_join.id, own.id}
        assert rows[sent.id].status == "sent" and all(row.opens == 1 for row in rows.values())

        # Now live: a mail sent from the desk, fetched at once (a delivery scan), then opened.
        live = mint_tag(desk, config, name="Di", subject="Live")
        record_self_fetch(desk, live.id, "send")
        started = time.monotonic()
        wait_for(lambda: _holds(laptop, desk), timeout=SYNC_BOUND_S, what="the desk's new tag on the laptop")
        took = time.monotonic() - started
        assert requests.get(server.url(live.id), headers={"User-Agent": AGENT}).ok
        wait_for(lambda: len(server.hit_lines()) == 4, what="the fourth hit")
        assert _register(laptop) == _register(desk)
        [row] = [row for row in rows_of(laptop) if row.id == live.id]
        assert row.opens == 0 and row.machine_hits == 1  # within the delivery window of the desk's send
    finally:
        server.stop()
    print(f"a tag minted on the desk reached the laptop in {took:.2f} s")

    # The laptop's tags log written again with the same bytes, on the desk (a sync tool
    # delivering it twice); and a conflict copy of an older state of it: nothing changes.
    before = _register(desk)
    log = desk.devices_dir / device_log_name("tags", laptop.device)
    data = log.read_bytes()
    temp = log.with_name(".again.tmp")
    temp.write_bytes(data)
    os.replace(temp, log)
    (desk.devices_dir / f"tags-{laptop.device}{CONFLICT}.csv").write_bytes(data[:data.index(b"\n") + 1] +
                                                                          data.splitlines(keepends=True)[1])
    wait_for(lambda: _holds(laptop, desk), timeout=SYNC_BOUND_S, what="the copies on the laptop")
    assert _register(desk) == before and _register(laptop) == before
