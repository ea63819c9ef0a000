"""'ranges update' and 'ranges status': fresh provider lists, fetched only when they changed."""

import gzip
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mailtracker.core.origins import OriginTable, Origins, table_path_of
from mailtracker.desktop.fold import load_origins
from tests.conftest import run_cli

LISTS = {
    "goog.json": json.dumps({"creationTime": "2026-11-30T10:00:00", "prefixes": [
        {"ipv4Prefix": "66.249.64.0/19"}, {"ipv4Prefix": "203.0.113.0/24"}]}).encode(),
    "cloud.json": json.dumps({"creationTime": "2026-11-30T10:00:00", "prefixes": [
        {"ipv4Prefix": "34.2.0.0/16"}]}).encode(),
    "worldwide": json.dumps([{"id": 10, "urls": ["*.mail.protection.outlook.com"],
                              "ips": ["40.107.0.0/16", "198.51.100.0/24"]}]).encode(),
    "egress-ip-ranges.csv": b"172.224.224.0/27,GB,GB-EN,London,\n",
    "dbip-asn-lite-{month}.csv.gz": gzip.compress(b"192.0.2.0,192.0.2.255,8075,Microsoft\n"),
}


class ListServer:
    """The providers' servers, played on loopback: each list with an ETag, 304 when it matches."""

    def __init__(self, month: str):
        files = {name.format(month=month): body for name, body in LISTS.items()}
        self.requests = []
        self.missing = set()  # names answered 404, as an outage of that provider
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.split("?", 1)[0].rsplit("/", 1)[1]
                outer.requests.append((name, self.headers.get("If-None-Match")))
                body = None if name in outer.missing or "*" in outer.missing else files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/lists/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def lists():
    from datetime import date

    server = ListServer(date.today().isoformat()[:7])
    yield server
    server.stop()


def test_update_fetches_each_list_replaces_its_ranges_and_relabels(home, lists):
    """The new snapshot names the new networks; a second update downloads nothing (304s)."""
    assert Origins.shipped().lookup("203.0.113.7") == ""
    proc = run_cli("ranges", "update", "--mirror", lists.url, home=home)
    assert proc.stdout.count("updated") == 5, proc.stdout
    updated = Origins.load(home.origins_path)
    assert updated.lookup("203.0.113.7") == "google" and updated.lookup("198.51.100.9") == "microsoft-eop"
    assert updated.lookup("192.0.2.1") == "microsoft" and updated.lookup("172.224.224.3") == "apple-relay"
    assert updated.lookup("205.139.110.1") == "mimecast"  # a source that is not fetched keeps its rows
    assert load_origins(home).fingerprint() == updated.fingerprint()
    table = OriginTable.load(home.origins_path)  # what the pixel server reads: the table beside it
    assert table_path_of(home.origins_path).exists() and table.lookup("203.0.113.7") == "google"
    second = run_cli("ranges", "update", "--mirror", lists.url, home=home)
    assert second.stdout.count("unchanged") == 5, second.stdout
    assert all(etag for _, etag in lists.requests[5:])
    status = run_cli("ranges", "status", home=home).stdout
    assert "updated with ranges update" in status and "google-goog   2026-11-30" in status


def test_a_list_that_fails_keeps_its_old_ranges_and_all_failing_is_an_error(home, lists):
    """One provider's outage costs only its list; nothing fetched at all exits 73 and changes nothing."""
    lists.missing = {"*"}
    proc = run_cli("ranges", "update", "--mirror", lists.url, home=home, check=False)
    assert proc.returncode == 73 and "no list could be fetched" in proc.stderr
    assert not home.origins_path.exists()
    lists.missing = {"cloud.json"}
    proc = run_cli("ranges", "update", "--mirror", lists.url, home=home)
    assert proc.stdout.count("failed") == 1 and proc.stdout.count("updated") == 4
    # Google Cloud's rows are the shipped ones still; Google's own were replaced.
    assert Origins.load(home.origins_path).lookup("34.2.0.1") == Origins.shipped().lookup("34.2.0.1")
    assert Origins.load(home.origins_path).lookup("203.0.113.7") == "google"


def test_status_names_every_shipped_source_with_its_date(home):
    """Without an update, status lists the shipped sources, each with a date and an age."""
    status = run_cli("ranges", "status", home=home).stdout
    assert "the snapshot shipped with mailtracker" in status
    for source in Origins.shipped().sources:
        assert source.id in status and source.date in status
