"""Several computers meeting at their pixel server (``/devices/``): a real ``mailtracker serve
--serve-hits`` on loopback, two homes each joined as its own computer, real files, the real
puller and real ``watch`` processes. The server's route refuses what it must in plain words; a
tag minted on one computer reaches the other's register and a hit on it counts on both; a lost
answer or a restarted server loses and doubles nothing."""

import json
import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import replace

import pytest
import requests

from mailtracker.core.contract import MAX_DEVICE_LOG_BYTES, MAX_PUSH_BYTES, pull_token
from mailtracker.core.errors import PullError
from mailtracker.core.paths import Home, device_log_name
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import init_home, load_config, save_config
from mailtracker.desktop.client import Session
from mailtracker.desktop.devices import join
from mailtracker.desktop.devicesync import read_sync_state
from mailtracker.desktop.fold import fold
from mailtracker.desktop.pull import Puller
from mailtracker.desktop.tags import mint_tag
from tests.conftest import AGENT, PixelServer, fill_disk, row_of, run_cli, wait_for
from tests.lying_server import LyingServer, endless, listing, trickling
from tests.tcp_proxy import TcpProxy
from tests.test_pull_live import Watch
from tests.test_pull import server, session, token  # noqa: F401 (fixtures: a --serve-hits server, its token)

LAPTOP_ID, DESK_ID = "laptop", "desk"


def device_logs(server: PixelServer):
    """The server's own devices folder: beside its hits folder."""
    return server.hits_dir.parent / "device-logs"


def computer(root, name: str, server_home: Home, pull_url: str) -> Home:
    """One of the person's computers: its own home, the person's secret, joined under its own id."""
    home = Home.locate(str(root / name))
    init_home(home, pull_url=pull_url)
    save_config(home, replace(load_config(home), devices_via_server=True))  # 'devices join --via-server'
    shutil.copy(server_home.secret_path, home.secret_path)
    join(home, hostname=name)
    return home


def puller_of(home: Home, url: str, session, **kwargs) -> Puller:
    return Puller(home.hits_dir(load_config(home)), [url], pull_token(read_secret(home.secret_path)),
                  session=session, devices=home, **kwargs)


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def push(server, token, name: str, at: int, body: bytes) -> requests.Response:
    return requests.post(f"{server.base}/devices/{name}", params={"at": str(at)}, data=body,
                         headers=auth(token), timeout=10)


NAME = device_log_name("tags", "laptop-abcdef")


# --- the server's route ---

def test_the_route_needs_the_token_and_takes_only_device_log_names(server, token, home):
    """No token: 401 for the list, a file and a push. A path, a dot file, a conflict copy, a hits
    file or another name: 404, and nothing is written anywhere."""
    for reply in (requests.get(server.base + "/devices/"), requests.get(f"{server.base}/devices/{NAME}"),
                  requests.post(f"{server.base}/devices/{NAME}?at=0", data=b"a\n")):
        assert reply.status_code == 401 and reply.headers["WWW-Authenticate"].startswith("Bearer")
    before = sorted(p for p in home.data_dir.rglob("*"))
    for name in ("..%2Fsecret", "../secret", f".{NAME}", "tags-laptop.csv", "hits-pixel-2026-01-01.csv",
                 "tags-laptop-abcdef.sync-conflict-20261207-013500-ABCDEFG.csv", "notes.txt", ""):
        reply = requests.post(f"{server.base}/devices/{name}?at=0", data=b"a\n", headers=auth(token))
        assert reply.status_code in (404, 400, 405), (name, reply.status_code)
    assert sorted(p for p in home.data_dir.rglob("*")) == before
    assert home.secret_path.read_bytes().strip() != b"a"
    assert requests.get(server.base + "/devices/", headers=auth(token)).json() == {"files": []}


def test_an_append_is_whole_lines_at_the_end_and_a_resend_is_done(server, token):
    """``at`` must be the size (else 409 with the size); the same bytes again are answered as done
    and kept once; a body that does not end a line is refused; the file holds exactly the lines."""
    assert push(server, token, NAME, 0, b"id,name\r\n").json() == {"size": 9}
    assert push(server, token, NAME, 0, b"id,name\r\n").json() == {"size": 9}  # its answer was lost
    reply = push(server, token, NAME, 3, b"x\r\n")
    assert reply.status_code == 409 and reply.headers["mailtracker-size"] == "9"
    reply = push(server, token, NAME, 20, b"x\r\n")
    assert reply.status_code == 409 and reply.headers["mailtracker-size"] == "9"
    assert push(server, token, NAME, 9, b"a,half").status_code == 400
    # A resend that overlaps the end and goes on: only the new part is appended.
    assert push(server, token, NAME, 3, b"name\r\na,b\r\n").json() == {"size": 14}
    assert (device_logs(server) / NAME).read_bytes() == b"id,name\r\na,b\r\n"
    listing = requests.get(server.base + "/devices/", headers=auth(token)).json()
    assert listing == {"files": [{"name": NAME, "size": 14}]}
    ranged = requests.get(f"{server.base}/devices/{NAME}", headers={**auth(token), "Range": "bytes=9-"})
    assert ranged.status_code == 206 and ranged.content == b"a,b\r\n"


def test_a_big_body_is_refused_unread_and_a_full_log_takes_no_more(server, token):
    """A body announced over 1 MiB is answered 413 before it is sent; a log at its cap refuses more."""
    port = int(server.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall((f"POST /devices/{NAME}?at=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                      f"Content-Length: {100 * MAX_PUSH_BYTES}\r\n\r\n").encode() + b"a" * 1000)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert not (device_logs(server) / NAME).exists()
    assert push(server, token, NAME, 0, b"a\n" * (MAX_PUSH_BYTES // 2 + 1)).status_code == 413
    log_file = device_logs(server) / NAME
    with open(log_file, "wb") as handle:
        handle.truncate(MAX_DEVICE_LOG_BYTES - 2)  # sparse: the cap without the bytes
    reply = push(server, token, NAME, MAX_DEVICE_LOG_BYTES - 2, b"abc\n")
    assert reply.status_code == 413 and "takes no more" in reply.text
    assert log_file.stat().st_size == MAX_DEVICE_LOG_BYTES - 2


@pytest.mark.posix_names
def test_symlinks_fifos_and_folders_take_no_push(server, token, home):
    """A symlink, a FIFO or a folder named like a device log: a prompt 409, never written through."""
    folder = device_logs(server)
    target = home.data_dir / "elsewhere.csv"
    target.write_bytes(b"keep\n")
    names = [device_log_name(kind, "laptop-abcdef") for kind in ("links", "replies", "self-fetches")]
    os.symlink(target, folder / names[0])
    os.mkfifo(folder / names[1])
    (folder / names[2]).mkdir()
    for name in names:
        reply = push(server, token, name, 0, b"a\n")
        assert reply.status_code == 409 and "not a regular file" in reply.text
    assert target.read_bytes() == b"keep\n"
    assert requests.get(server.base + "/devices/", headers=auth(token)).json() == {"files": []}
    assert requests.get(f"{server.base}/devices/{names[0]}", headers=auth(token)).status_code == 404


def test_device_logs_live_beside_the_hits_never_in_them(server, token):
    """The hits listing (and so a pull, retention or a sync tool sharing the hits) never sees them."""
    assert push(server, token, NAME, 0, b"id\r\n").ok
    assert device_logs(server).parent == server.hits_dir.parent != device_logs(server)
    assert NAME not in requests.get(server.base + "/hits/", headers=auth(token)).text
    assert not list(server.hits_dir.glob("*tags*"))
    assert (device_logs(server).stat().st_mode & 0o777) == 0o700


def test_a_full_disk_answers_507_and_leaves_no_partial_line(home, token, tiny_disk, tmp_path, session):
    """The devices folder on a full disk: 507 in plain words, the file as it was, and the desktop
    says so; with room again, it goes on and nothing is lost."""
    server = PixelServer(home, "--serve-hits", "--devices-dir", str(tiny_disk / "devices"))
    try:
        assert push(server, token, NAME, 0, b"id\r\n").ok
        filler = fill_disk(tiny_disk)
        reply = push(server, token, NAME, 4, b"x" * 200_000 + b"\n")
        assert reply.status_code == 507 and "disk is full" in reply.text
        assert (tiny_disk / "devices" / NAME).read_bytes() == b"id\r\n"
        laptop = computer(tmp_path, LAPTOP_ID, home, server.base)
        for n in range(3):
            mint_tag(laptop, load_config(laptop), name=f"Full {n} " + "x" * 2000)
        puller = puller_of(laptop, server.base, session)
        with pytest.raises(PullError, match="disk is full"):
            puller.devices.sync_all()
        filler.unlink()
        assert push(server, token, NAME, 4, b"a,b\r\n").json() == {"size": 9}
        puller.devices.sync_all()
        local = laptop.devices_dir / device_log_name("tags", laptop.device)
        assert (tiny_disk / "devices" / local.name).read_bytes() == local.read_bytes()
    finally:
        server.stop()


def test_a_server_that_keeps_no_device_logs_is_named(pair, session):
    """An older server (or one without /devices/): the message says what to do."""
    laptop, _ = pair
    older = LyingServer({})
    try:
        with pytest.raises(PullError, match="does not keep device logs.*update it"):
            puller_of(laptop, older.url, session).devices.sync_all()
    finally:
        older.close()
    assert "does not keep device logs" in read_sync_state(laptop)[older.url]["problem"]


# --- two computers ---

@pytest.fixture
def pair(tmp_path, home, server):
    laptop = computer(tmp_path, LAPTOP_ID, home, server.base)
    desk = computer(tmp_path, DESK_ID, home, server.base)
    return laptop, desk


def hits_of(home: Home, tag_id: str) -> int:
    return row_of(home, tag_id).get("hits", 0)


def test_two_computers_see_the_same_mail_through_the_pixel_server(pair, server):
    """The laptop mints a tag; its watch pushes it; the desk's watch pulls it; a hit on it is
    counted on both, once."""
    laptop, desk = pair
    watches = [Watch(laptop), Watch(desk)]
    try:
        first = mint_tag(laptop, load_config(laptop), name="First")
        wait_for(lambda: row_of(desk, first.id)["name"] == "First", timeout=30,
                 what="both watches started and the desk showing the laptop's first mail")
        tag = mint_tag(laptop, load_config(laptop), name="Both", subject="Seen on both")
        pushed = device_logs(server) / device_log_name("tags", laptop.device)
        wait_for(lambda: tag.id in pushed.read_text(), timeout=10, what="the laptop's watch pushing its new tag")
        # The desk waits in a listing the server holds (not its 30 s interval): the new mail shows
        # there within about a second (10 s under load), before any hit.
        wait_for(lambda: row_of(desk, tag.id)["name"] == "Both", timeout=10,
                 what="the desk's register showing the laptop's new mail")
        assert requests.get(server.url(tag.id), headers={"User-Agent": AGENT}).ok
        for computer_home in (laptop, desk):
            wait_for(lambda: hits_of(computer_home, tag.id) == 1, timeout=20,
                     what=f"the hit counted on {computer_home.device}")
        assert row_of(desk, tag.id)["name"] == "Both"
        # The desk never writes the laptop's log: it holds exactly what the laptop wrote.
        mine = laptop.devices_dir / device_log_name("tags", laptop.device)
        assert (desk.devices_dir / mine.name).read_bytes() == mine.read_bytes() == pushed.read_bytes()
    finally:
        errs = [watch.stop() for watch in watches]
    assert not any("Traceback" in err for err in errs), errs
    assert hits_of(desk, tag.id) == hits_of(laptop, tag.id) == 1


def _hold_after_listing(server, token, proxy) -> None:
    """Hold the next connection's answers once the listing's has gone through: the push that
    follows on it reaches the server, and its answer does not come back."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(f"GET /devices/ HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\nAuthorization: Bearer {token}\r\n"
                     "Accept-Encoding: identity\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    # Its own answer says 'connection: close'; the puller's (kept alive) does not.
    size = len(answer) - len(b"connection: close\r\n") if b"connection: close" in answer else len(answer)
    proxy.hold_after(size)


def test_a_lost_answer_and_a_restarted_server_lose_and_double_nothing(pair, home, server, token, session):
    """A push whose answer never comes back, then a server restart: every tag reaches the other
    computer, each row once."""
    laptop, desk = pair
    port = int(server.base.rsplit(":", 1)[1])
    proxy = TcpProxy(port)
    laptop_puller = puller_of(laptop, proxy.url, session)
    desk_session = Session()
    try:
        first = mint_tag(laptop, load_config(laptop), name="First")
        laptop_puller.devices.sync_all()
        second = mint_tag(laptop, load_config(laptop), name="Second")
        proxy.drop_all()  # the next request opens a connection, which the proxy holds after the listing
        _hold_after_listing(server, token, proxy)
        pushed = device_logs(server) / device_log_name("tags", laptop.device)
        outcome = []
        pushing = threading.Thread(target=lambda: outcome.append(_error_of(laptop_puller.devices.sync_all)))
        pushing.start()
        wait_for(lambda: second.id in pushed.read_text(), timeout=20, what="the held push written")
        assert proxy.held.is_set()
        proxy.drop_all()  # its answer is lost
        pushing.join(20)
        assert isinstance(outcome[0], PullError), outcome
        proxy.release()
        laptop_puller.devices.sync_all()  # asks again: the server has it, nothing is sent twice
        local = laptop.devices_dir / device_log_name("tags", laptop.device)
        assert pushed.read_bytes() == local.read_bytes() and pushed.read_text().count(second.id) == 1
        server.stop()
        restarted = PixelServer(home, "--serve-hits", "--port", str(port))
        try:
            third = mint_tag(laptop, load_config(laptop), name="Third")
            assert laptop_puller.devices.sync_all().pushed
            assert pushed.read_bytes() == local.read_bytes()
            puller_of(desk, restarted.base, desk_session).devices.sync_all()
            pulled = (desk.devices_dir / local.name).read_text()
            assert [pulled.count(tag.id) for tag in (first, second, third)] == [1, 1, 1]
            fold(desk)
            assert [row_of(desk, tag.id)["name"] for tag in (first, second, third)] == ["First", "Second", "Third"]
        finally:
            restarted.stop()
    finally:
        proxy.close()
        desk_session.close()


def _error_of(call):
    try:
        call()
    except PullError as exc:
        return exc
    return None


def test_a_confused_server_never_writes_this_computers_log(pair, server, session, caplog):
    """The server holds a longer, different copy of this computer's log: nothing is pushed there
    and nothing of it is written here, said once over several rounds; the other computer's logs
    still come."""
    laptop, desk = pair
    mine = mint_tag(laptop, load_config(laptop), name="Mine")
    theirs = mint_tag(desk, load_config(desk), name="Theirs")
    puller_of(desk, server.base, session).devices.sync_all()
    local = laptop.devices_dir / device_log_name("tags", laptop.device)
    before = local.read_bytes()
    (device_logs(server) / local.name).write_bytes(b"not the laptop's\r\n" * 100)
    puller = puller_of(laptop, server.base, session)
    with caplog.at_level(logging.WARNING, logger="mailtracker.desktop.devicesync"):
        for _ in range(3):
            puller.devices.sync_all()
    assert local.read_bytes() == before
    assert theirs.id in (laptop.devices_dir / device_log_name("tags", desk.device)).read_text()
    said = [r.getMessage() for r in caplog.records if local.name in r.getMessage()]
    assert len(said) == 1 and "not this computer's log" in said[0], said
    assert mine.id not in (device_logs(server) / local.name).read_text()


def test_a_hostile_listing_is_refused(pair, session):
    """A listing naming a path or a dot file is refused whole, nothing written."""
    laptop, _ = pair
    for bad in ("../../config.toml", ".tags-desk-abcdef.csv", "tags-desk-abcdef.csv/x"):
        listing = json.dumps({"files": [{"name": bad, "size": 10}]}).encode()
        lying = LyingServer({"/devices/": lambda request, body=listing: (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)})
        try:
            with pytest.raises(PullError, match="does not accept"):
                puller_of(laptop, lying.url, session).devices.sync_all()
        finally:
            lying.close()
    assert sorted(p.name for p in laptop.devices_dir.iterdir()) == [".stignore"]


def test_a_devices_folder_syncthing_shares_is_pushed_from_but_not_pulled_into(pair, server, session):
    """Syncthing brings the other computers' logs there: the server's copies are not appended to
    them as well (Syncthing would take that for this computer's change, and make conflicts)."""
    laptop, desk = pair
    mint_tag(laptop, load_config(laptop), name="Synced")
    (desk.devices_dir / ".stfolder").mkdir()
    mint_tag(desk, load_config(desk), name="Desk")
    assert puller_of(laptop, server.base, session).devices.sync_all().pushed
    result = puller_of(desk, server.base, session).devices.sync_all()
    assert result.pushed and not result.pulled
    assert not (desk.devices_dir / device_log_name("tags", laptop.device)).exists()


def test_the_logs_go_to_the_server_only_when_chosen(tmp_path, home, server):
    """A joined computer with a pull URL keeps its logs to itself until 'devices join --via-server':
    they hold the tracked mails' subjects and recipients."""
    laptop = Home.locate(str(tmp_path / "solo"))
    init_home(laptop, pull_url=server.base)
    shutil.copy(home.secret_path, laptop.secret_path)
    joined = run_cli("devices", "join", home=laptop).stdout
    assert "--via-server" in joined and not load_config(laptop).devices_via_server
    mint_tag(laptop, load_config(laptop), name="Private", subject="Quarterly numbers")
    out = run_cli("pull", home=laptop).stdout
    assert "Device logs" not in out
    assert not device_logs(server).exists() or not any(device_logs(server).iterdir())
    assert "meet at" in run_cli("devices", "join", "--via-server", home=laptop).stdout
    assert load_config(laptop).devices_via_server
    assert "pushed" in run_cli("pull", home=laptop).stdout
    assert "Quarterly numbers" in (device_logs(server) / device_log_name("tags", laptop.device)).read_text()


def test_pull_pushes_and_pulls_and_devices_list_says_when(pair, server):
    """'mailtracker pull' on each computer; 'devices list' names when each server was last pushed
    to and pulled from."""
    laptop, desk = pair
    tag = mint_tag(laptop, load_config(laptop), name="Cli")
    assert "pushed" in run_cli("pull", home=laptop).stdout
    assert "pulled" in run_cli("pull", home=desk).stdout
    assert tag.id in (desk.devices_dir / device_log_name("tags", laptop.device)).read_text()
    listing = run_cli("devices", "list", home=desk).stdout
    state = read_sync_state(desk)[server.base]
    assert f"the others' last pulled {state['pulled']}" in listing
    assert "last pushed" in run_cli("devices", "list", home=laptop).stdout
    assert read_sync_state(laptop)[server.base]["pushed"]


def test_caddy_passes_a_push(home, tmp_path, monkeypatch, session):
    """Through the shipped Caddyfile, a push and a pull of the device logs work."""
    from tests.caddy import caddy_in_front

    with caddy_in_front(home, tmp_path, monkeypatch) as caddy:
        laptop = computer(tmp_path, LAPTOP_ID, home, caddy.url)
        desk = computer(tmp_path, DESK_ID, home, caddy.url)
        tag = mint_tag(laptop, load_config(laptop), name="Caddy")
        assert puller_of(laptop, caddy.url, session).devices.sync_all().pushed
        assert puller_of(desk, caddy.url, session).devices.sync_all().pulled
        assert tag.id in (desk.devices_dir / device_log_name("tags", laptop.device)).read_text()


def test_a_trickling_or_endless_server_is_given_up_and_watch_stops_at_once(pair, session, monkeypatch):
    """The pull's bounds hold on the devices route: a listing that never ends is cut at 4 MiB, a
    trickling log is given up at the deadline keeping its whole lines, and a puller waiting on
    such a server stops within seconds."""
    from mailtracker.desktop import pull

    laptop, _ = pair
    entry = b'{"name":"tags-desk-abcdef.csv","size":1},'
    streaming = LyingServer({"/devices/": lambda request: endless(
        b'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n{"files":[', entry * 1000)})
    try:
        with pytest.raises(PullError, match="longer than 4 MiB"):
            puller_of(laptop, streaming.url, session).devices.sync_all()
    finally:
        streaming.close()
    name = device_log_name("tags", "desk-abcdef")
    lines = b"id,name\r\n" + b"".join(b"t%d,Mail %d\r\n" % (n, n) for n in range(5))
    trickle, total = trickling(lines)
    slow = LyingServer({"/devices/": listing({name: total}), f"/devices/{name}": trickle})
    try:
        began = time.monotonic()
        with pytest.raises(PullError, match="too slowly"):
            puller_of(laptop, slow.url, session, deadline_s=2).devices.sync_all()
        assert time.monotonic() - began < 6
        assert (laptop.devices_dir / name).read_bytes() == lines
        assert not list(laptop.devices_dir.glob(".*.tmp"))
        (laptop.devices_dir / name).unlink()  # asked from its start again: inside the trickle
        asked = sum(r["path"] == f"/devices/{name}" for r in slow.requests)
        puller = puller_of(laptop, slow.url, session, live=False).start()
        wait_for(lambda: sum(r["path"] == f"/devices/{name}" for r in slow.requests) > asked, timeout=20,
                 what="the running puller inside the trickle again")
        began = time.monotonic()
        puller.stop()
        assert time.monotonic() - began < pull.STOP_WITHIN_S
    finally:
        slow.close()


def test_a_long_history_goes_up_in_bounded_rounds(pair, server, session, monkeypatch):
    """A round pushes about what a pull may bring at most (here 1 KB, in pushes of 600 bytes);
    'more' says to go on, and the rounds that follow bring the server's copy up to the whole
    log, each line once."""
    from mailtracker.desktop import devicesync

    monkeypatch.setattr(devicesync, "MAX_PULL_BYTES", 1000)
    monkeypatch.setattr(devicesync, "MAX_PUSH_BYTES", 600)
    laptop, _ = pair
    tags = [mint_tag(laptop, load_config(laptop), name=f"History {n}") for n in range(30)]
    local = laptop.devices_dir / device_log_name("tags", laptop.device)
    assert local.stat().st_size > 2000
    sync = puller_of(laptop, server.base, session).devices
    first = sync.sync(sync.sources[0])
    assert first.more and sum(first.pushed.values()) < local.stat().st_size
    sync.sync_all()
    held = (device_logs(server) / local.name).read_text()
    assert held == local.read_text() and all(held.count(tag.id) == 1 for tag in tags)
