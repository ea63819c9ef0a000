"""The puller against a server that lies (tests/lying_server.py): however big,
endless, slow or wrong its answers, a pull writes only what it asked for, keeps
only whole lines, ends within its deadline and says what happened; a full disk
keeps the copy as it was. Issue 22, bugs 1-3."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from mailtracker.core.csvcodec import format_row, header_line
from mailtracker.core.errors import PullError
from mailtracker.core.hitline import HIT_COLUMNS
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop import pull
from mailtracker.desktop.pull import Puller
from tests.conftest import AGENT
from tests.lying_server import LyingServer, endless, listing, response, trickling

NAME = "hits-liar-2026-01-01.csv"
TOKEN = "t" * 43


def hit_lines(count: int, start: int = 1) -> bytes:
    when = utc_timestamp()
    return "".join(format_row([f"liarboot.{n:x}", when, "a" * 22, "GET", "198.51.100.0", AGENT, ""])
                   for n in range(start, start + count)).encode()


HEADER = header_line(HIT_COLUMNS)
LINE = hit_lines(1)


def run_pull(puller: Puller, within_s: float = 20.0):
    """pull_once in a thread: (the PullResult or the PullError, seconds taken); fails if it
    has not ended within ``within_s`` (a pull that hangs or writes for ever)."""
    outcome = []

    def target():
        try:
            outcome.append(puller.pull_once())
        except PullError as exc:
            outcome.append(exc)

    began = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(within_s)
    assert not thread.is_alive(), f"the pull had not ended after {within_s} s"
    return outcome[0], time.monotonic() - began


@pytest.fixture
def liar():
    servers = []

    def make(routes):
        server = LyingServer(routes)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs: a disk that fills (skipped where it cannot be mounted)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                                           capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs as a disk that fills")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".pull-tmp"))


def ranged(body: bytes, start: int, total: int, length: bool = True):
    return response(206, body, {"Content-Range": f"bytes {start}-{start + len(body) - 1}/{total}"}, length)


def test_an_endless_body_writes_no_more_than_was_asked(liar, small_disk, monkeypatch):
    """A server listing 10 GiB and streaming hit lines for ever: the pull stops at the bytes it
    asked for, keeps nothing of that answer, and the disk does not fill."""
    monkeypatch.setattr(pull, "MAX_REQUEST_BYTES", 256 << 10, raising=False)
    head = (b"HTTP/1.1 206 Partial\r\nConnection: close\r\nContent-Range: bytes 0-10737418239/10737418240\r\n\r\n"
            + HEADER)
    server = liar({"/hits/": listing({NAME: 10 << 30}),
                   f"/hits/{NAME}": lambda request: endless(head, LINE * 100)})
    puller = Puller(small_disk, [server.url], TOKEN, reserve_bytes=0)
    outcome, _ = run_pull(puller)
    assert isinstance(outcome, PullError) and "more of" in str(outcome) and "nothing of it was written" in str(outcome)
    assert not (small_disk / NAME).exists() and leftovers(small_disk) == []
    assert os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize > 3 << 20


def test_a_huge_or_endless_listing_is_not_read_whole(liar, tmp_path):
    """A listing that announces 300 MB is refused unread; one that never ends is cut at 4 MiB."""
    announced = liar({"/hits/": lambda request: b"HTTP/1.1 200 OK\r\nContent-Length: 300000000\r\n\r\n{"})
    outcome, _ = run_pull(Puller(tmp_path, [announced.url], TOKEN))
    assert isinstance(outcome, PullError) and "300000000 bytes" in str(outcome)
    entry = b'{"name":"hits-x-2026-01-01.csv","size":1},'
    streaming = liar({"/hits/": lambda request: endless(
        b'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n{"files":[', entry * 1000)})
    outcome, _ = run_pull(Puller(tmp_path, [streaming.url], TOKEN))
    assert isinstance(outcome, PullError) and "longer than 4 MiB" in str(outcome)


def test_a_length_in_unicode_digits_is_read_as_no_length(liar, tmp_path):
    """A Content-Length of '²' (str.isdigit says yes, int() says no) is no length: the
    listing is read as it comes and the pull goes on, never a crash of the puller."""
    body = b'{"files":[]}'
    odd = liar({"/hits/": lambda request: b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\nContent-Length: \xb2\r\n\r\n" + body})
    outcome, _ = run_pull(Puller(tmp_path, [odd.url], TOKEN))
    assert not isinstance(outcome, PullError), outcome


def test_a_trickling_server_is_given_up_at_the_deadline(liar, tmp_path, monkeypatch):
    """One byte every 0.2 s never trips a per-read timeout; the pull's deadline ends it, the whole
    lines that came are kept, and the message says why."""
    monkeypatch.setattr(pull, "PULL_DEADLINE_S", 2.0, raising=False)
    body = HEADER + hit_lines(2)
    trickle, total = trickling(body)
    server = liar({"/hits/": listing({NAME: total}), f"/hits/{NAME}": trickle})
    outcome, took = run_pull(Puller(tmp_path, [server.url], TOKEN))
    assert isinstance(outcome, PullError) and "too slowly" in str(outcome), outcome
    assert took < 6
    assert (tmp_path / NAME).read_bytes() == body and leftovers(tmp_path) == []


def test_watch_stops_within_seconds_of_sigterm_whatever_the_pull_does(liar, tmp_path):
    """'watch' pulling from a server that trickles its listing exits within 5 s of SIGTERM."""
    from mailtracker.core.paths import Home
    from mailtracker.core.settings import init_home

    server = liar({"/hits/": lambda request: endless(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{",
                                                     b" ", pause_s=0.5)})
    desktop = Home.locate(str(tmp_path / "desktop"))
    init_home(desktop, pull_url=server.url)
    watch = subprocess.Popen([sys.executable, "-m", "mailtracker", "--home", str(desktop.data_dir), "watch"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.requests, "watch never asked the server"
        time.sleep(1)  # the pull is inside the trickle now
        began = time.monotonic()
        watch.send_signal(signal.SIGTERM)
        watch.communicate(timeout=30)
        assert time.monotonic() - began < 5
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()


def test_wrong_spans_are_refused_and_the_copy_kept(liar, tmp_path):
    """Another start than asked, the whole file for a range, or more bytes announced than asked:
    refused, named, nothing written."""
    local = tmp_path / NAME
    have = HEADER + hit_lines(3)
    local.write_bytes(have)
    more = hit_lines(2, start=4)
    server_file = have + more
    start = len(have) - 64
    answers = {
        "another start": ranged(server_file[start + 10:], start + 10, len(server_file)),
        "the whole file": response(200, server_file),
        "more than asked": ranged(server_file[start:] + more, start, len(server_file) + len(more)),
    }
    for what, answer in answers.items():
        server = liar({"/hits/": listing({NAME: len(server_file)}), f"/hits/{NAME}": lambda r, a=answer: a})
        outcome, _ = run_pull(Puller(tmp_path, [server.url], TOKEN))
        assert isinstance(outcome, PullError), what
        assert "nothing of it was written" in str(outcome), (what, outcome)
        assert local.read_bytes() == have and leftovers(tmp_path) == [], what


def test_a_file_that_shrinks_mid_answer_keeps_whole_lines_and_finishes_later(liar, tmp_path):
    """An answer cut in the middle of a line: the whole lines stay, the half line does not, and the
    next pull brings the rest."""
    lines = hit_lines(10)
    whole = HEADER + lines
    cut = len(HEADER) + len(lines) // 2 + 7   # inside the 6th line
    honest = {"on": False}

    def answer(request):
        if honest["on"]:
            first = int(request["headers"]["range"].split("=")[1].split("-")[0])
            return ranged(whole[first:], first, len(whole))
        head = (f"HTTP/1.1 206 Partial\r\nContent-Length: {len(whole)}\r\n"
                f"Content-Range: bytes 0-{len(whole) - 1}/{len(whole)}\r\n\r\n").encode()
        return head + whole[:cut]

    server = liar({"/hits/": listing({NAME: len(whole)}), f"/hits/{NAME}": answer})
    puller = Puller(tmp_path, [server.url], TOKEN)
    outcome, _ = run_pull(puller)
    assert isinstance(outcome, PullError) and "broke after" in str(outcome)
    kept = (tmp_path / NAME).read_bytes()
    assert kept.endswith(b"\r\n") and whole.startswith(kept) and len(kept) < cut
    honest["on"] = True
    outcome, _ = run_pull(puller)
    assert not isinstance(outcome, PullError), outcome
    assert (tmp_path / NAME).read_bytes() == whole


def test_a_redirect_is_not_followed_and_the_token_not_sent_on(liar, tmp_path):
    """A 302 to another host: refused with the address named; the other host sees no request."""
    elsewhere = liar({})
    target = elsewhere.url.replace("127.0.0.1", "127.0.0.2") + "/hits/"
    server = liar({"/hits/": lambda request: response(302, b"", {"Location": target})})
    outcome, _ = run_pull(Puller(tmp_path, [server.url], TOKEN))
    assert isinstance(outcome, PullError) and target in str(outcome) and "not followed" in str(outcome)
    assert elsewhere.requests == []


def test_pull_url_mistakes_are_named(liar, tmp_path):
    """http:// answered with a redirect to https: 'use https'; a path in pull_url: the bare address."""
    server = liar({"/hits/": lambda request: response(308, b"", {"Location": "https://t.example.org/hits/"})})
    outcome, _ = run_pull(Puller(tmp_path, [server.url], TOKEN))
    assert isinstance(outcome, PullError) and f"set pull_url to https://127.0.0.1:{server.port}" in str(outcome)
    for path in ("/hits/", "/p", "/hits"):
        outcome, _ = run_pull(Puller(tmp_path, [server.url + path], TOKEN))
        assert isinstance(outcome, PullError) and f"address alone: {server.url}" in str(outcome), outcome
    assert len(server.requests) == 1


def test_a_disk_without_room_is_not_written_to(liar, small_disk):
    """A 4 MiB disk and 8 MiB of new hits: refused before a byte is written, with the free space named."""
    server = liar({"/hits/": listing({NAME: 8 << 20})})
    outcome, _ = run_pull(Puller(small_disk, [server.url], TOKEN))
    assert isinstance(outcome, PullError) and "MiB free" in str(outcome) and NAME in str(outcome)
    assert pull.reach_of(outcome) == (pull.FAILING, "disk full here")  # the tray's few words
    assert len(server.requests) == 1 and [p.name for p in small_disk.iterdir()] == [".pull.lock"]


def test_a_disk_that_fills_mid_pull_leaves_the_copy_as_it_was(liar, small_disk, monkeypatch):
    """With the free-space check out of the way (as when another program fills the disk during
    the pull): ENOSPC is a plain message, the copy is unchanged and no temporary file stays."""
    monkeypatch.setattr(Puller, "_check_room", lambda *args: None)
    local = small_disk / NAME
    have = HEADER + hit_lines(3)
    local.write_bytes(have)
    server_file = have + hit_lines(40_000, start=4)  # ~5 MiB: more than the disk holds
    start = len(have) - 64
    server = liar({"/hits/": listing({NAME: len(server_file)}),
                   f"/hits/{NAME}": lambda request: ranged(server_file[start:], start, len(server_file))})
    outcome, _ = run_pull(Puller(small_disk, [server.url], TOKEN))
    assert isinstance(outcome, PullError) and "No space left" in str(outcome)
    assert pull.reach_of(outcome) == (pull.FAILING, "cannot write here")
    assert local.read_bytes() == have and leftovers(small_disk) == []
