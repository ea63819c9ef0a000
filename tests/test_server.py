"""The pixel server, as a real process on loopback: answers, logging, bad input."""

import asyncio
import csv
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from mailtracker.core.contract import GIF
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import load_config
from mailtracker.desktop.tags import mint_tag
from mailtracker.server.app import create_app
from mailtracker.server.hitlog import HitLog
from mailtracker.server.settings import ServerSettings
from tests.conftest import PixelServer, fill_disk, wait_for


def _hits(server):
    text = "\r\n".join(server.hit_lines())
    return list(csv.DictReader(io.StringIO("hit_id,time,tag,method,client,user_agent,referer\r\n" + text,
                                           newline="")))


def _raw(server, data: bytes, timeout=5.0) -> bytes:
    port = int(server.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"Connection: close" not in data:
                    break
        except (ConnectionResetError, socket.timeout):
            pass
        return b"".join(chunks)


@pytest.fixture
def tag(home):
    return mint_tag(home, load_config(home), name="John")


def test_valid_pixel_answers_a_gif_and_logs_the_hit(pixel_server, tag):
    """GET of a minted pixel: the 43-byte GIF, no caching, and one line in the hits log."""
    reply = requests.get(pixel_server.url(tag.id), headers={"User-Agent": "Mail/1.0", "Referer": "https://r.example/"})
    assert reply.status_code == 200 and reply.content == GIF and len(GIF) == 43
    assert reply.headers["Content-Type"] == "image/gif"
    assert "no-store" in reply.headers["Cache-Control"]
    (hit,) = _hits(pixel_server)
    assert hit["tag"] == tag.id and hit["method"] == "GET"
    assert hit["user_agent"] == "Mail/1.0" and hit["referer"] == "https://r.example/"
    assert hit["client"] == "127.0.0.0"  # truncated to /24 by default
    assert hit["time"].endswith("Z") and len(hit["time"]) == 24
    files = list(pixel_server.hits_dir.glob("hits-pixel-*.csv"))
    assert len(files) == 1 and files[0].name == f"hits-pixel-{hit['time'][:10]}.csv"
    assert files[0].read_bytes().startswith(b"\xef\xbb\xbfhit_id,time,tag,")


def test_head_is_answered_and_logged_as_head(pixel_server, tag):
    """HEAD gets the GIF's headers without a body and is logged with its method."""
    reply = requests.head(pixel_server.url(tag.id))
    assert reply.status_code == 200 and reply.headers["Content-Length"] == "43" and reply.content == b""
    assert [h["method"] for h in _hits(pixel_server)] == ["HEAD"]


def test_forged_token_gets_the_same_gif_and_is_not_logged(pixel_server, tag):
    """A scanner learns nothing: forged tokens get the same answer, nothing is logged."""
    forged = tag.id[:-1] + ("a" if tag.id[-1] != "a" else "b")
    good = requests.get(pixel_server.url(tag.id))
    bad = requests.get(pixel_server.url(forged))
    assert bad.status_code == good.status_code == 200 and bad.content == GIF
    assert {k: v for k, v in bad.headers.items() if k != "date"} == \
        {k: v for k, v in good.headers.items() if k != "date"}
    assert [h["tag"] for h in _hits(pixel_server)] == [tag.id]


def test_an_altered_token_is_refused_right_after_its_genuine_hit(pixel_server, tag):
    """The server remembers tokens that verified; any other token, however close to one it
    has just logged (a character changed, capitals, a digit int() reads as the same letter), is
    checked in full, answered the same and not logged."""
    assert requests.get(pixel_server.url(tag.id)).content == GIF
    wait_for(lambda: len(_hits(pixel_server)) == 1, what="the genuine hit logged")
    altered = {tag.id[:i] + ("a" if tag.id[i] != "a" else "b") + tag.id[i + 1:] for i in range(len(tag.id))}
    altered |= {tag.id.upper(), tag.id[:-1] + tag.id[-1].upper()}
    altered |= {tag.id.replace(letter, digit, 1) for letter, digit in zip("abij", "0189") if letter in tag.id}
    altered.discard(tag.id)  # a token ending in a digit is its own capital form
    for token in sorted(altered) * 2:  # twice: a token refused once is refused again
        assert requests.get(pixel_server.url(token)).content == GIF
    assert requests.get(pixel_server.url(tag.id)).content == GIF
    wait_for(lambda: len(_hits(pixel_server)) >= 2, what="the second genuine hit logged")
    assert [h["tag"] for h in _hits(pixel_server)] == [tag.id, tag.id]


def test_old_links_keep_working_after_a_prefix_change(pixel_server, tag):
    """The token is the last path segment, whatever prefix came before it."""
    for prefix in ("/p", "/old/prefix", ""):
        assert requests.get(pixel_server.url(tag.id, prefix=prefix)).content == GIF
    assert len(_hits(pixel_server)) == 3


def test_other_paths_are_404_and_other_methods_405(pixel_server, tag):
    """Only pixels and /healthz exist; POST to a pixel is refused."""
    assert requests.get(pixel_server.base + "/").status_code == 404
    assert requests.get(pixel_server.base + "/p/" + tag.id).status_code == 404
    assert requests.post(pixel_server.url(tag.id)).status_code == 405
    health = requests.get(pixel_server.base + "/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert _hits(pixel_server) == []


def test_path_traversal_reads_nothing(pixel_server, home):
    """Traversal attempts get a 404 or the plain GIF; no file content leaks."""
    secret = home.secret_path.read_bytes().strip()
    for path in (b"/p/../../../etc/passwd", b"/p/..%2f..%2fsecret.gif", b"/../" + str(home.secret_path).encode()):
        reply = _raw(pixel_server, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.startswith((b"HTTP/1.1 404", b"HTTP/1.1 200", b"HTTP/1.1 400")), reply[:80]
        assert secret not in reply and b"root:" not in reply
    assert _hits(pixel_server) == []


def test_malformed_and_oversized_requests_are_refused_and_server_keeps_serving(pixel_server, tag):
    """Garbage gets 400, a 1 MB header or 200 headers get 431, TLS bytes no 200; hits still log."""
    assert _raw(pixel_server, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert not _raw(pixel_server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 20).startswith(b"HTTP/1.1 200")
    pixel = b"GET /p/" + tag.id.encode() + b".gif HTTP/1.1\r\nHost: x\r\n"
    huge = pixel + b"X-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
    assert _raw(pixel_server, huge).startswith(b"HTTP/1.1 431")
    many = pixel + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n"
    assert _raw(pixel_server, many).startswith(b"HTTP/1.1 431")
    assert _hits(pixel_server) == []
    assert requests.get(pixel_server.url(tag.id)).content == GIF
    assert len(_hits(pixel_server)) == 1


def test_non_utf8_and_formula_user_agents_are_logged_safely(pixel_server, tag):
    """Invalid UTF-8 becomes U+FFFD, a formula is neutralised, control bytes are dropped."""
    _raw(pixel_server, b"GET /p/" + tag.id.encode() + b".gif HTTP/1.1\r\nHost: x\r\nUser-Agent: bad\xff\xfebytes\r\n\r\n")
    requests.get(pixel_server.url(tag.id), headers={"User-Agent": '=HYPERLINK("http://evil","x")'})
    requests.get(pixel_server.url(tag.id), headers={"User-Agent": "a\tb"})
    agents = [h["user_agent"] for h in _hits(pixel_server)]
    assert agents[0] == "bad\ufffd\ufffdbytes"
    assert agents[1] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert agents[2] == "a b"


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(home, tag):
    """X-Forwarded-For only counts when it comes from a --trusted-proxies address."""
    plain = PixelServer(home)
    try:
        requests.get(plain.url(tag.id), headers={"X-Forwarded-For": "203.0.113.9"})
        assert _hits(plain)[0]["client"] == "127.0.0.0"
    finally:
        plain.stop()
    proxied = PixelServer(home, "--trusted-proxies", "127.0.0.1", "--server-id", "proxied")
    try:
        requests.get(proxied.url(tag.id), headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"})
        assert [h["client"] for h in _hits(proxied) if True][-1] == "203.0.113.0"
    finally:
        proxied.stop()


def test_client_address_privacy_modes(home, tag):
    """full keeps the address, hash keeps a salted digest that never shows the address."""
    full = PixelServer(home, "--client-address", "full", "--server-id", "full")
    requests.get(full.url(tag.id))
    full.stop()
    hashed = PixelServer(home, "--client-address", "hash", "--server-id", "hashed")
    requests.get(hashed.url(tag.id))
    requests.get(hashed.url(tag.id))
    hashed.stop()
    clients = {h["client"] for h in _hits(full)}
    assert "127.0.0.1" in clients
    hashed_clients = {h["client"] for h in _hits(hashed) if h["client"] not in clients}
    assert len(hashed_clients) == 1 and "127" not in hashed_clients.pop()


def test_a_second_server_with_the_same_id_is_refused(pixel_server, home):
    """Two writers on one file would interleave lines: the second one says so and exits."""
    proc = subprocess.run(
        [os.sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "serve", "--port", "0",
         "--hits-dir", str(pixel_server.hits_dir)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 50
    assert "already writing" in proc.stderr and "--server-id" in proc.stderr


def test_a_port_another_server_listens_on_is_refused(pixel_server, home, tmp_path):
    """A second server on a busy port (even with another id and folder) exits 50 instead of sharing it."""
    port = pixel_server.base.rsplit(":", 1)[1]
    proc = subprocess.run(
        [os.sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "serve", "--port", port,
         "--hits-dir", str(tmp_path / "other"), "--server-id", "other"],
        capture_output=True, text=True, timeout=30)
    assert proc.returncode == 50, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "--port" in proc.stderr
    assert proc.stdout == "", "a server that did not start announced itself"
    assert not list((tmp_path / "other").glob("hits-*.csv"))


def test_a_port_held_by_another_program_is_refused(home, tmp_path):
    """Anything listening on the port (here a plain socket) is named before any worker starts."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        proc = subprocess.run(
            [os.sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "serve",
             "--port", str(port)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 50 and "is using the port" in proc.stderr, proc.stderr
    assert proc.stdout == "", "a server that did not start announced itself"


def test_the_banner_comes_once_the_server_listens(home):
    """What serve prints can be used at once: the first connection after the banner is answered."""
    proc = subprocess.Popen([os.sys.executable, "-m", "mailtracker", "--home", str(home.data_dir), "serve",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        banner = proc.stdout.readline()
        port = int(re.search(r"http://127.0.0.1:(\d+)/", banner).group(1))
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["status"] == "ok"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        proc.stdout.close()


def test_serve_reads_a_config_file_and_flags_override_it(home, tag, tmp_path):
    """serve --config: hits_dir, server_id, client_address from the file; --port on the command line wins."""
    secret = tmp_path / "secret"
    secret.write_bytes(home.secret_path.read_bytes())
    config = tmp_path / "server.toml"
    config.write_text(f'''[server]
host = "127.0.0.1"
port = 1
hits_dir = "{tmp_path / 'hits'}"
server_id = "fromfile"
client_address = "full"
secret_file = "{secret}"
trusted_proxies = ["127.0.0.1"]
''')
    server = PixelServer(home, "--config", str(config), "--server-id", "fromfile", hits_dir=tmp_path / "hits")
    try:
        requests.get(server.url(tag.id), headers={"X-Forwarded-For": "203.0.113.9"})
        wait_for(lambda: server.hit_lines(), what="the hit")
    finally:
        server.stop()
    (line,) = server.hit_lines()
    assert ",203.0.113.9," in line  # trusted proxy and full addresses, both from the file


def test_a_bad_server_config_is_a_config_error(home, tmp_path):
    """An unknown key or a wrong type in the server config exits 11 and names the key."""
    config = tmp_path / "server.toml"
    config.write_text('[server]\nport = "56789"\n')
    proc = subprocess.run([os.sys.executable, "-m", "mailtracker", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 11 and "port must be a whole number" in proc.stderr, proc.stderr
    config.write_text('[server]\nretention = 3\n')
    proc = subprocess.run([os.sys.executable, "-m", "mailtracker", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 11 and "unknown setting 'retention'" in proc.stderr


def test_kill_9_under_load_loses_no_answered_hit(home, tag):
    """Every hit whose GIF reached the client is in the log after a kill -9 mid-load."""
    server = PixelServer(home)
    answered, lock, stop = [], threading.Lock(), threading.Event()

    def client(n):
        session = requests.Session()
        i = 0
        while not stop.is_set():
            agent = f"c{n}-{i}"
            try:
                if session.get(server.url(tag.id), headers={"User-Agent": agent}, timeout=5).content == GIF:
                    with lock:
                        answered.append(agent)
            except requests.RequestException:
                return
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(answered) >= 500, timeout=30, what="500 answered hits")
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop()
    logged = {h["user_agent"] for h in _hits(server)}
    missing = set(answered) - logged
    assert not missing, f"{len(missing)} answered hits lost"
    assert len(answered) >= 500


def _children(pid: int):
    children = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        if int(stat[stat.rfind(b")") + 2:].split()[1]) == pid:
            children.append(int(entry))
    return children


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process tree from /proc")
def test_one_worker_is_served_by_one_process_that_stops_cleanly(home, tag):
    """The default single worker runs in the serve process itself (no supervisor beside it,
    half the memory); SIGTERM closes its log and exits 0, so systemd restarts only a failure."""
    server = PixelServer(home)
    try:
        assert requests.get(server.url(tag.id), headers={"User-Agent": "one"}).content == GIF
        assert _children(server.proc.pid) == []
        os.kill(server.proc.pid, signal.SIGTERM)
        assert server.proc.wait(timeout=20) == 0
    finally:
        server.stop()
    assert "1 hits logged" in server.log_path.read_text()
    assert [h["user_agent"] for h in _hits(server)] == ["one"]


def test_each_worker_writes_its_own_file(home, tag):
    """With --workers 2 the hits are split over per-worker files, none lost or doubled."""
    server = PixelServer(home, "--workers", "2")
    try:
        session = requests.Session()
        for i in range(200):
            requests.get(server.url(tag.id), headers={"User-Agent": f"u{i}"})
        wait_for(lambda: len(server.hit_lines()) >= 200, what="200 hits logged")
        names = {p.name.rsplit("-", 3)[0] for p in server.hits_dir.glob("hits-*.csv")}
        assert names <= {"hits-pixel.w1", "hits-pixel.w2"}
        assert sorted(h["user_agent"] for h in _hits(server)) == sorted(f"u{i}" for i in range(200))
        session.close()
    finally:
        server.stop()


def test_full_disk_keeps_answering_reports_and_writes_later(home, tag, tiny_disk):
    """On a full disk: GIFs still served, /healthz says why, hits written once space returns, and the log says when."""
    hits_dir = tiny_disk / "hits"
    server = PixelServer(home, hits_dir=hits_dir)
    try:
        requests.get(server.url(tag.id), headers={"User-Agent": "before"})
        filler = fill_disk(tiny_disk)
        for i in range(50):
            assert requests.get(server.url(tag.id), headers={"User-Agent": f"during-{i}"}).content == GIF
        health = requests.get(server.base + "/healthz")
        assert health.status_code == 503 and health.json()["pending_hits"] > 0
        assert "cannot write hits" in server.log()
        filler.unlink()
        requests.get(server.url(tag.id), headers={"User-Agent": "after"})
        assert requests.get(server.base + "/healthz").status_code == 200
        assert "hits can be written to" in server.log() and "again after" in server.log()
        agents = [h["user_agent"] for h in _hits(server)]
        assert agents == ["before"] + [f"during-{i}" for i in range(50)] + ["after"]
    finally:
        server.stop()


def test_lines_written_together_on_a_filling_disk_are_all_kept_once_in_order(tiny_disk):
    """A write of many hits' lines that the disk takes only part of: what it took stays, the
    rest waits in memory from the byte where it stopped, and all land once, in order."""
    log = HitLog(tiny_disk / "hits", "grouped")
    try:
        assert log.append(b"before\r\n", "2026-12-07")
        filler = fill_disk(tiny_disk)
        lines = [f"line-{i:03}-".encode() + b"x" * 200 + b"\r\n" for i in range(100)]
        assert not log.append_lines(lines, "2026-12-07")
        assert len(log.pending) > 0 and log.written + len(log.pending) == 1 + len(lines)
        filler.unlink()
        assert log.flush_pending() and not log.pending
    finally:
        log.close()
    data = log.path_for("2026-12-07").read_bytes()
    assert data.split(b"\r\n")[1:-1] == [b"before"] + [line[:-2] for line in lines]
    assert log.written == 1 + len(lines)


def test_hits_answered_together_are_each_logged_once(home, tag, tiny_disk):
    """Many hits at once, on a disk that fills and frees in the middle: every answered hit
    is in the log exactly once, with hit ids that run without a gap."""
    server = PixelServer(home, hits_dir=tiny_disk / "hits")
    agents = [f"at-once-{i}" for i in range(48)]
    start, answered = threading.Barrier(len(agents)), []

    def hit(agent):
        with requests.Session() as session:
            start.wait(timeout=10)
            for round_ in range(3):
                if session.get(server.url(tag.id), headers={"User-Agent": f"{agent}-{round_}"},
                               timeout=10).content == GIF:
                    answered.append(f"{agent}-{round_}")

    try:
        requests.get(server.url(tag.id), headers={"User-Agent": "before"})
        filler = fill_disk(tiny_disk)
        threads = [threading.Thread(target=hit, args=(agent,)) for agent in agents]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        filler.unlink()
        assert requests.get(server.base + "/healthz").status_code == 200
    finally:
        server.stop()
    assert len(answered) == 3 * len(agents)
    logged = [h["user_agent"] for h in _hits(server)]
    assert sorted(logged) == sorted(["before"] + answered)
    sequence = sorted(int(h["hit_id"].split(".")[1], 16) for h in _hits(server))
    assert sequence == list(range(1, len(answered) + 2))


def test_each_answer_waits_for_its_line_in_the_file_asgi_calls_in_process(home, tag, tmp_path):
    """Hits that arrive in one turn of the event loop share a write, and still no answer starts
    before its own line is in the file. In process, with a recording ASGI send: no real server
    can show the file at the moment an answer starts."""
    settings = ServerSettings(hits_dir=str(tmp_path / "hits"), server_id="order",
                              secret_file=str(home.secret_path))
    app = create_app(settings, read_secret(home.secret_path))
    agents = [f"together-{i}" for i in range(20)]
    in_file_when_answered = {}

    def request(agent):
        scope = {"type": "http", "method": "GET", "path": f"/p/{tag.id}.gif", "query_string": b"",
                 "client": ("127.0.0.1", 40000), "headers": [(b"user-agent", agent.encode())]}

        async def send(message):
            if message["type"] == "http.response.start":
                (path,) = (tmp_path / "hits").glob("hits-order-*.csv")
                in_file_when_answered[agent] = agent.encode() in path.read_bytes()

        async def receive():
            return {"type": "http.disconnect"}

        return app(scope, receive, send)

    async def serve_together():
        await asyncio.gather(*(request(agent) for agent in agents))

    try:
        asyncio.run(serve_together())
    finally:
        app.close()
    assert in_file_when_answered == {agent: True for agent in agents}
    assert app.hit_log.written == len(agents)


def test_client_addresses_are_normalised_and_never_carry_separators(home, tag):
    """Scope ids and ports are dropped, ::ffff:a.b.c.d is IPv4, and what is no address is stored as 'unknown'."""
    server = PixelServer(home, "--trusted-proxies", "127.0.0.1", "--client-address", "full")
    forwarded = [b"fe80::1%a\tb", b"fe80::2%eth0", b"::ffff:198.51.100.7", b"[2001:db8::1]",
                 b"203.0.113.9:51234", b"[2001:db8::2]:443",
                 b"1.2.3.4;x", b'"1.2.3.4"', b"=cmd|' /C calc'!A0", b"\xff\xfe", b"1.2.3.4\xc2\x9b"]
    try:
        for value in forwarded:
            _raw(server, b"GET /p/" + tag.id.encode() + b".gif HTTP/1.1\r\nHost: x\r\n"
                 b"X-Forwarded-For: " + value + b"\r\nConnection: close\r\n\r\n")
        wait_for(lambda: len(server.hit_lines()) == len(forwarded), what="every hit logged")
    finally:
        server.stop()
    clients = [h["client"] for h in _hits(server)]
    assert clients == ["fe80::1", "fe80::2", "198.51.100.7", "2001:db8::1", "203.0.113.9", "2001:db8::2",
                       "unknown", "unknown", "unknown", "unknown", "unknown"]
    for line in server.hit_lines():
        assert line.split(",")[4] in clients


def test_dual_stack_ipv4_peers_stay_ipv4(home, tag):
    """With --host ::, an IPv4 peer is truncated as IPv4 and matches an IPv4 --trusted-proxies network."""
    server = PixelServer(home, "--host", "::", "--trusted-proxies", "127.0.0.1")
    try:
        requests.get(server.url(tag.id))
        requests.get(server.url(tag.id), headers={"X-Forwarded-For": "203.0.113.9"})
        requests.get(server.url(tag.id), headers={"X-Forwarded-For": "198.51.100.20"})
    finally:
        server.stop()
    assert [h["client"] for h in _hits(server)] == ["127.0.0.0", "203.0.113.0", "198.51.100.0"]


def test_c1_control_characters_are_removed_from_user_agents(pixel_server, tag):
    """CSI and OSC in their one-character C1 forms never reach the log (nor a terminal), nor do
    Unicode line separators (a line break in editors and log viewers)."""
    agent = "Mail\u009b31mRED\u009d0;title\u009c \u0085next\u2028line".encode("utf-8")
    _raw(pixel_server, b"GET /p/" + tag.id.encode() + b".gif HTTP/1.1\r\nHost: x\r\nUser-Agent: "
         + agent + b"\r\nConnection: close\r\n\r\n")
    wait_for(lambda: pixel_server.hit_lines(), what="the hit logged")
    (hit,) = _hits(pixel_server)
    assert hit["user_agent"] == "Mail 31mRED 0;title   next line"
    assert not any(0x80 <= ord(c) <= 0x9f for c in hit["user_agent"])


def test_a_hits_file_moved_or_deleted_while_serving_is_reopened(pixel_server, tag):
    """A hits file renamed or deleted under the server: later hits go to a new file at its path, /healthz stays true."""
    requests.get(pixel_server.url(tag.id), headers={"User-Agent": "before"})
    (path,) = pixel_server.hits_dir.glob("hits-pixel-*.csv")
    moved = path.with_name("moved-away.csv")
    path.rename(moved)
    time.sleep(1.1)
    requests.get(pixel_server.url(tag.id), headers={"User-Agent": "after-move"})
    assert path.exists() and "after-move" in path.read_text(encoding="utf-8-sig")
    assert "after-move" not in moved.read_text(encoding="utf-8-sig")
    path.unlink()
    health = requests.get(pixel_server.base + "/healthz")
    assert health.status_code == 200 and path.exists()
    requests.get(pixel_server.url(tag.id), headers={"User-Agent": "after-delete"})
    assert path.read_bytes().startswith(b"\xef\xbb\xbfhit_id,") and b"after-delete" in path.read_bytes()
    assert "was moved or deleted while this server wrote to it" in pixel_server.log()


def test_the_server_writes_where_a_hit_came_from_before_it_hides_the_address(home):
    """Behind a trusted proxy, a fetch from Exchange Online Protection is written with its
    origin even though the address is stored hashed: the desktop can still call it a scanner."""
    from mailtracker.core.secret import read_secret
    from mailtracker.core.tokens import mint_token

    token = mint_token(read_secret(home.secret_path))
    server = PixelServer(home, "--client-address", "hash", "--trusted-proxies", "127.0.0.1")
    try:
        for address in ("40.107.22.1", "198.51.100.7"):
            requests.get(server.url(token), headers={"X-Forwarded-For": address, "User-Agent": "Chrome/126.0"})
        lines = server.hit_lines()
    finally:
        server.stop()
    assert [line.rsplit(",", 1)[1] for line in lines] == ["microsoft-eop", ""]
    assert "40.107" not in "".join(lines)


def test_a_hits_folder_deleted_while_serving_is_made_again(pixel_server, tag):
    """The whole hits folder removed under the server: the next hits recreate it, none answered is lost after it."""
    requests.get(pixel_server.url(tag.id), headers={"User-Agent": "before"})
    shutil.rmtree(pixel_server.hits_dir)
    time.sleep(1.1)
    assert requests.get(pixel_server.url(tag.id), headers={"User-Agent": "after"}).content == GIF
    assert requests.get(pixel_server.base + "/healthz").status_code == 200
    assert [h["user_agent"] for h in _hits(pixel_server)] == ["after"]
