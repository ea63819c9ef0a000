"""HTTP pull against the real pixel server on loopback: the token, the served
files, Range, and the desktop's Puller through restarts, cut connections,
rotated and replaced files, a wrong token and a server that is down."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from mailtracker.core.contract import pull_token
from mailtracker.core.csvcodec import format_row
from mailtracker.core.errors import PullAuthError, PullError
from mailtracker.core.hitline import HIT_COLUMNS
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import init_home, load_config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop.client import Session
from mailtracker.desktop.fold import fold
from mailtracker.desktop.pull import FAILING, Puller, PullStatus, reach_of, retry_delay
from mailtracker.desktop.register import read_register
from mailtracker.desktop.tags import mint_tag
from mailtracker.server.hitfiles import parse_range
from mailtracker.server.hitlog import HitLog
from tests.conftest import AGENT, PixelServer, free_port, row_of, run_cli, wait_for
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def server(home):
    server = PixelServer(home, "--serve-hits")
    yield server
    server.stop()


@pytest.fixture
def token(home) -> str:
    return pull_token(read_secret(home.secret_path))


@pytest.fixture
def session():
    session = Session()
    yield session
    session.close()


def make_puller(desktop: Home, url: str, session, **kwargs) -> Puller:
    token = pull_token(read_secret(desktop.secret_path))
    return Puller(desktop.hits_dir(load_config(desktop)), [url], token, session=session, **kwargs)


def hit(server: PixelServer, tag, n: int = 1) -> None:
    for i in range(n):
        assert requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} #{i}"}).ok


def same_files(server_dir, local_dir) -> bool:
    names = sorted(p.name for p in server_dir.glob("hits-*.csv"))
    return names == sorted(p.name for p in local_dir.glob("hits-*.csv")) and all(
        (server_dir / n).read_bytes() == (local_dir / n).read_bytes() for n in names)


def hits_counted(desktop: Home) -> int:
    fold(desktop)
    return sum(int(row["hits"]) for row in read_register(desktop.register_path))


def big_hits_file(path, tags, lines: int, boot: str = "bigboot1") -> None:
    """A past server's hits file in the server's exact format, ``lines`` hits long."""
    rows = [format_row(HIT_COLUMNS)]
    when = utc_timestamp()
    for seq in range(1, lines + 1):
        rows.append(format_row([f"{boot}.{seq:x}", when, tags[seq % len(tags)].id, "GET", "198.51.100.0",
                                f"{AGENT} padding-{'x' * 40}", ""]))
    path.write_bytes(("\ufeff" + "".join(rows)).encode())


# --- the server's side ---

def test_hits_need_the_bearer_token(server, token):
    """No token, a wrong one or another scheme: 401 with a Bearer challenge; the right one: the list."""
    url = server.base + "/hits/"
    for headers in ({}, {"Authorization": "Bearer " + "x" * len(token)},
                    {"Authorization": "Basic " + token}, {"Authorization": "Bearer " + token[:-1]}):
        reply = requests.get(url, headers=headers)
        assert reply.status_code == 401 and reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"hits-" not in reply.content
    reply = requests.get(url, headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200 and reply.json() == {"files": []}


def test_only_hits_files_directly_in_the_folder_are_listed(server, token, home):
    """Dot files, other names, sub-folders and symlinks are neither listed nor served."""
    hits_dir = server.hits_dir
    (hits_dir / "hits-a-2026-01-01.csv").write_bytes(b"hit_id\r\n")
    (hits_dir / "notes.txt").write_bytes(b"private")
    (hits_dir / ".hits-a-2026-01-01.csv.pull-tmp").write_bytes(b"tmp")
    (hits_dir / "hits-sub.csv").mkdir()
    (hits_dir / "hits-sub.csv" / "hits-x.csv").write_bytes(b"nested")
    os.symlink(home.secret_path, hits_dir / "hits-secret.csv")
    auth = {"Authorization": f"Bearer {token}"}
    listed = requests.get(server.base + "/hits/", headers=auth).json()["files"]
    assert listed == [{"name": "hits-a-2026-01-01.csv", "size": 8}]
    secret = home.secret_path.read_bytes().strip()
    for name in ("notes.txt", "hits-secret.csv", "hits-sub.csv", "hits-sub.csv/hits-x.csv",
                 ".hits-a-2026-01-01.csv.pull-tmp"):
        reply = requests.get(f"{server.base}/hits/{name}", headers=auth)
        assert reply.status_code == 404 and secret not in reply.content


def test_a_fifo_named_like_a_hits_file_does_not_stall_the_server(server, token, home):
    """GET of a FIFO called hits-*.csv is a prompt 404; the server keeps answering pixels."""
    tag = mint_tag(home, load_config(home), name="Ann")
    fifo = server.hits_dir / "hits-evil-2026-01-01.csv"
    os.mkfifo(fifo)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        reply = requests.get(f"{server.base}/hits/{fifo.name}", headers=auth, timeout=3)
        assert reply.status_code == 404
        assert requests.get(server.url(tag.id), timeout=3).status_code == 200
        listed = requests.get(server.base + "/hits/", headers=auth, timeout=3).json()["files"]
        assert fifo.name not in [f["name"] for f in listed]
    finally:
        try:  # a server stuck opening the FIFO is released by a writer, so it can stop
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


def test_no_path_leaves_the_hits_folder(server, token, home):
    """Traversal, encoded or not, gets a 404 (or 400) and never a byte of another file."""
    secret = home.secret_path.read_bytes().strip()
    port = int(server.base.rsplit(":", 1)[1])
    paths = [b"/hits/../secret", b"/hits/..%2fsecret", b"/hits/%2e%2e/%2e%2e/config.toml",
             b"/hits/..%2f..%2fsecret", b"/hits/hits-x.csv/../../secret", b"/hits//etc/passwd",
             b"/hits/hits-..%2f..%2fsecret.csv", b"/hits/%2Fetc%2Fpasswd"]
    for path in paths:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         b"Authorization: Bearer " + token.encode() + b"\r\n\r\n")
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith((b"HTTP/1.1 404", b"HTTP/1.1 400")), (path, reply[:60])
        assert secret not in reply and b"root:" not in reply and b"[pixel]" not in reply


def test_range_requests_send_exactly_the_bytes_asked(server, token):
    """bytes=N-, N-M and -K give 206 with Content-Range; past the end 416; nonsense the whole file."""
    data = bytes(range(256)) * 4
    (server.hits_dir / "hits-r-2026-01-01.csv").write_bytes(data)
    url = server.base + "/hits/hits-r-2026-01-01.csv"

    def get(range_header=None, method="GET"):
        headers = {"Authorization": f"Bearer {token}"}
        if range_header:
            headers["Range"] = range_header
        return requests.request(method, url, headers=headers)

    whole = get()
    assert whole.status_code == 200 and whole.content == data and whole.headers["Accept-Ranges"] == "bytes"
    tail = get("bytes=1000-")
    assert tail.status_code == 206 and tail.content == data[1000:]
    assert tail.headers["Content-Range"] == "bytes 1000-1023/1024"
    assert get("bytes=10-19").content == data[10:20]
    assert get("bytes=-5").content == data[-5:]
    past = get("bytes=1024-")
    assert past.status_code == 416 and past.headers["Content-Range"] == "bytes */1024"
    for nonsense in ("bytes=5-2", "lines=1-", "bytes=1-2,4-5", "bytes=x-"):
        assert get(nonsense).status_code == 200 and get(nonsense).content == data
    head = get("bytes=1000-", method="HEAD")
    assert head.status_code == 206 and head.headers["Content-Length"] == "24" and head.content == b""


def test_parse_range_edge_cases():
    """The pure Range parser: suffixes, clamping, and ranges that ask for nothing."""
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-", 10) == (0, 10)
    assert parse_range("bytes=2-100", 10) == (2, 10)
    assert parse_range("bytes=-100", 10) == (0, 10)
    for empty in ("bytes=10-", "bytes=-0"):
        with pytest.raises(ValueError):
            parse_range(empty, 10)
    with pytest.raises(ValueError):
        parse_range("bytes=-1", 0)


def test_hits_are_not_served_without_serve_hits(pixel_server, token):
    """Serving hits is opt-in: without --serve-hits, /hits/ does not exist."""
    reply = requests.get(pixel_server.base + "/hits/", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 404


def test_the_token_is_derived_from_the_secret_and_printed_by_the_cli(home, token):
    """Both sides derive the same token; 'pull --print-token' shows it for curl."""
    assert run_cli("pull", "--print-token", home=home).stdout.strip() == token
    assert pull_token(b"another secret of 32 bytes......") != token
    assert len(token) == 43


# --- the desktop's side ---

def test_pulls_fetch_only_the_new_bytes(server, desktop, home, session):
    """Each pull fetches only what grew; with nothing new the answer is a bodiless 304."""
    tag = mint_tag(desktop, load_config(desktop), name="Ann")
    puller = make_puller(desktop, server.base, session)
    local = desktop.hits_dir(load_config(desktop))
    hit(server, tag, 3)
    first = puller.pull_once()
    assert same_files(server.hits_dir, local) and first.requests == 1
    assert hits_counted(desktop) == 3
    size_before = sum(p.stat().st_size for p in local.glob("hits-*.csv"))
    hit(server, tag, 2)
    second = puller.pull_once()
    grown = sum(p.stat().st_size for p in local.glob("hits-*.csv")) - size_before
    assert same_files(server.hits_dir, local)
    assert second.bytes_received == grown + 64  # the new lines and the 64 bytes that prove continuity
    assert hits_counted(desktop) == 5
    idle = puller.pull_once()
    assert idle.unchanged and idle.bytes_received == 0 and idle.requests == 0 and not idle.changed
    assert hits_counted(desktop) == 5


def test_a_truncated_response_keeps_what_arrived_and_the_next_pull_finishes(server, desktop, session):
    """A connection cut mid-file: the bytes that arrived stay, the next pull fetches only the rest."""
    tags = [mint_tag(desktop, load_config(desktop), name=f"T{i}") for i in range(3)]
    big_hits_file(server.hits_dir / "hits-old-2026-01-01.csv", tags, 20_000)
    proxy = TcpProxy(int(server.base.rsplit(":", 1)[1]))
    try:
        puller = make_puller(desktop, proxy.url, session)
        proxy.cut_after(300_000)
        with pytest.raises(PullError, match=r"broke after \d+ of \d+ bytes of hits-old-2026-01-01.csv"):
            puller.pull_once()
        local = desktop.hits_dir(load_config(desktop)) / "hits-old-2026-01-01.csv"
        remote = (server.hits_dir / local.name).read_bytes()
        kept = local.read_bytes()
        assert 0 < len(kept) < len(remote) and remote.startswith(kept)
        result = puller.pull_once()
        assert local.read_bytes() == remote
        assert result.bytes_received == len(remote) - len(kept) + 64
    finally:
        proxy.close()
    assert hits_counted(desktop) == 20_000


def test_a_server_restart_in_the_middle_of_a_pull_loses_nothing(home, desktop, session):
    """kill -9 of the server mid-transfer, a restart on the same port, new hits: all arrive, once each."""
    port = free_port()
    tags = [mint_tag(desktop, load_config(desktop), name=f"R{i}") for i in range(3)]
    hits_dir = home.hits_dir(load_config(home))
    big_hits_file(hits_dir / "hits-old-2026-01-01.csv", tags, 150_000)  # far more than socket buffers
    server = PixelServer(home, "--serve-hits", "--port", str(port))
    proxy = TcpProxy(port)
    errors = []
    try:
        hit(server, tags[0], 2)
        puller = make_puller(desktop, proxy.url, session)
        proxy.hold_after(1_000_000)
        pulling = threading.Thread(target=lambda: errors.append(_pull_error(puller)))
        pulling.start()
        assert proxy.held.wait(10), "the pull never got going"
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.stop()
        proxy.release()
        pulling.join(30)
        assert errors and "broke after" in str(errors[0])
        server = PixelServer(home, "--serve-hits", "--port", str(port))
        hit(server, tags[1], 3)
        puller.pull_all()
        assert same_files(hits_dir, desktop.hits_dir(load_config(desktop)))
    finally:
        proxy.close()
        server.stop()
    assert hits_counted(desktop) == 150_000 + 2 + 3


def _pull_error(puller):
    try:
        puller.pull_once()
    except PullError as exc:
        return exc
    return None


def test_a_rotated_file_and_a_replaced_file(server, home, desktop, session):
    """A new day's file is pulled whole; a file replaced on the server is downloaded again, not glued on."""
    tag = mint_tag(desktop, load_config(desktop), name="Rot")
    puller = make_puller(desktop, server.base, session)
    hit(server, tag, 2)
    puller.pull_once()
    # The day turns: the server's HitLog opens the next day's file (as at midnight UTC).
    log = HitLog(server.hits_dir, "rotated")
    try:
        log.append(format_row(["rotboot1.1", utc_timestamp(), tag.id, "GET", "203.0.113.0", AGENT, ""]).encode(),
                   "2026-01-01")
        log.append(format_row(["rotboot1.2", utc_timestamp(), tag.id, "GET", "203.0.113.0", AGENT, ""]).encode(),
                   "2026-01-02")
    finally:
        log.close()
    result = puller.pull_once()
    assert set(result.files) == {"hits-rotated-2026-01-01.csv", "hits-rotated-2026-01-02.csv"}
    local = desktop.hits_dir(load_config(desktop))
    assert same_files(server.hits_dir, local) and hits_counted(desktop) == 4
    # Someone replaces a file on the server with other content of the same start and a longer body.
    replaced = server.hits_dir / "hits-rotated-2026-01-01.csv"
    text = replaced.read_bytes()
    replaced.write_bytes(text[:-70] + b"X" * 70 + format_row(
        ["rotboot2.1", utc_timestamp(), tag.id, "GET", "203.0.113.0", AGENT, ""]).encode())
    result = puller.pull_once()
    assert result.replaced == ["hits-rotated-2026-01-01.csv"]
    assert same_files(server.hits_dir, local)
    # A file that shrank on the server is downloaded whole too.
    replaced.write_bytes(text)
    assert puller.pull_once().replaced == ["hits-rotated-2026-01-01.csv"]
    assert same_files(server.hits_dir, local)
    # The server pruned an old file: the desktop keeps its copy.
    replaced.unlink()
    puller.pull_once()
    assert (local / replaced.name).exists()


def test_a_wrong_token_is_a_401_with_a_clear_message(server, tmp_path, session):
    """A desktop whose secret is not the server's is told so, with exit code 71."""
    stranger = Home.locate(str(tmp_path / "stranger"))
    init_home(stranger, pull_url=server.base)
    with pytest.raises(PullAuthError, match=r"refused the pull token \(HTTP 401\).*secret") as refused:
        make_puller(stranger, server.base, session).pull_once()
    assert reach_of(refused.value) == (FAILING, "token refused (HTTP 401)")  # the tray's few words
    proc = run_cli("pull", home=stranger, check=False)
    assert proc.returncode == PullAuthError.code == 71
    assert "HTTP 401" in proc.stderr and "secret" in proc.stderr


def test_a_server_without_serve_hits_is_named(pixel_server, desktop, session):
    """Pulling from a server that does not serve hits says to start it with --serve-hits."""
    with pytest.raises(PullError, match="--serve-hits") as refused:
        make_puller(desktop, pixel_server.base, session).pull_once()
    assert reach_of(refused.value) == (FAILING, "does not serve hits (HTTP 404)")


def test_retry_delay_doubles_up_to_a_cap():
    """After failures the puller waits 5, 10, 20... seconds, never more than 10 minutes."""
    assert [retry_delay(n, 30) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert retry_delay(20, 30) == 600
    assert retry_delay(1, 2) == 2 and retry_delay(3, 2) == 8
    assert retry_delay(30, 900) == 900


class StatusRecorder:
    def __init__(self):
        self.statuses = []
        self.changed = threading.Condition()

    def __call__(self, status: PullStatus, result):
        with self.changed:
            self.statuses.append((status, result))
            self.changed.notify_all()

    def wait(self, predicate, timeout=10.0):
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self.statuses), timeout), self.statuses


def test_a_server_that_is_down_backs_off_then_recovers_on_demand(home, desktop, session):
    """Connection refused: status 'failing' with the reason and a growing delay; pull_now after a start works."""
    port = free_port()
    recorder = StatusRecorder()
    puller = make_puller(desktop, f"http://127.0.0.1:{port}", session, interval_s=0.2, on_pull=recorder)
    with puller:
        recorder.wait(lambda s: len(s) >= 3)
        statuses = [status for status, _ in recorder.statuses]
        assert all(s.state == "failing" for s in statuses)
        assert "cannot connect to 127.0.0.1" in statuses[0].message
        assert "Connection refused" in statuses[0].message
        assert [s.retry_in_s for s in statuses[:3]] == [0.2, 0.4, 0.8]
        assert puller.status.failures >= 3
        server = PixelServer(home, "--serve-hits", "--port", str(port))
        try:
            tag = mint_tag(desktop, load_config(desktop), name="Up")
            hit(server, tag)
            puller.pull_now()
            # A pull that brought the hit: one in the backoff may have come just after the start.
            recorder.wait(lambda s: s[-1][0].state == "ok" and any(result and result.files for _, result in s))
            assert puller.status.failures == 0 and puller.status.last_success
        finally:
            server.stop()
    assert puller.status.state == "stopped"
    assert hits_counted(desktop) == 1


def test_watch_pulls_and_folds_by_itself(server, desktop):
    """'watch' with a pull_url keeps the register current from a server it only reaches over HTTP."""
    init_home(desktop, pull_url=server.base)
    desktop.config_path.write_text(desktop.config_path.read_text().replace(
        "pull_interval_s = 30.0", "pull_interval_s = 0.2"))
    tag = mint_tag(desktop, load_config(desktop), name="Watched")
    hit(server, tag)
    watch = subprocess.Popen([sys.executable, "-m", "mailtracker", "--home", str(desktop.data_dir), "watch"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "Pulling hits from" in watch.stdout.readline() + watch.stdout.readline()

        def hits_in_register():
            if not desktop.register_path.exists():
                return 0
            return sum(int(row["hits"]) for row in read_register(desktop.register_path))

        wait_for(lambda: hits_in_register() == 1, timeout=10, what="the first hit in the register")
        hit(server, tag)
        wait_for(lambda: hits_in_register() == 2, timeout=10, what="the second hit in the register")
    finally:
        watch.send_signal(signal.SIGTERM)
        _, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert row_of(desktop, tag.id)["hits"]


def test_a_pull_writes_through_no_symlink_and_waits_on_no_fifo(home, desktop, session, tmp_path):
    """Local entries named like the server's files but a symlink or a FIFO: left alone, named, the other files pulled."""
    server = PixelServer(home, "--serve-hits")
    try:
        tag = mint_tag(desktop, load_config(desktop), name="Ann")
        for name in ("hits-one-2026-01-01.csv", "hits-two-2026-01-01.csv", "hits-three-2026-01-01.csv"):
            big_hits_file(server.hits_dir / name, [tag], 3, boot=name.split("-")[1] + "boot")
        local = desktop.hits_dir(load_config(desktop))
        local.mkdir(parents=True, exist_ok=True)
        outside = tmp_path / "not-a-hits-file.txt"
        outside.write_bytes(b"keep me\n")
        os.symlink(outside, local / "hits-one-2026-01-01.csv")
        os.mkfifo(local / "hits-two-2026-01-01.csv")
        puller = make_puller(desktop, server.base, session)
        result = puller.pull_once()
        assert outside.read_bytes() == b"keep me\n"
        assert (local / "hits-three-2026-01-01.csv").read_bytes() == \
            (server.hits_dir / "hits-three-2026-01-01.csv").read_bytes()
        assert "hits-three-2026-01-01.csv" in result.files
        (local / "hits-one-2026-01-01.csv").unlink()
        puller.pull_once()  # not answered "nothing new": the skipped file comes once it can
        assert (local / "hits-one-2026-01-01.csv").read_bytes() == \
            (server.hits_dir / "hits-one-2026-01-01.csv").read_bytes()
    finally:
        server.stop()


def test_a_file_left_alone_does_not_make_the_live_puller_ask_again_and_again(server, desktop, session, home):
    """A local FIFO named like a server's file keeps the listing 'incomplete': the running puller
    then asks again after its interval, not in a tight loop."""
    tag = mint_tag(desktop, load_config(desktop), name="Fifo")
    hit(server, tag)
    (name,) = [p.name for p in server.hits_dir.glob("hits-*.csv")]
    local = desktop.hits_dir(load_config(desktop))
    local.mkdir(parents=True, exist_ok=True)
    os.mkfifo(local / name)
    asked = []
    session.hooks["response"].append(lambda response, *args, **kwargs: asked.append(response.url))
    recorder = StatusRecorder()
    with make_puller(desktop, server.base, session, interval_s=30, on_pull=recorder):
        recorder.wait(lambda s: len(s) >= 1)
        time.sleep(3)
    assert len(asked) <= 3, asked
