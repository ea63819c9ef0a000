"""The HTML report: its numbers are the register's, it is self-contained, and
headless Chromium draws its charts (bars and timeline dots counted in the PNG)."""

import html as html_module
import json
import os
import re
import subprocess
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mailtracker.core.files import append_rows
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import load_config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.core.tokens import mint_token
from mailtracker.desktop.fold import fold
from mailtracker.desktop.register import read_register
from mailtracker.desktop import report as report_module
from mailtracker.desktop.report import BAR_COLOUR, LABEL_COLOURS, write_report
from mailtracker.desktop.tags import TAG_COLUMNS
from tests.conftest import OUTLOOK, THUNDERBIRD, write_hits
from tests.display import require

ARTIFACTS = os.environ.get("MAILTRACKER_TEST_ARTIFACTS")


def _noon(days_ago: int) -> float:
    """Local noon some days ago: the same local day whatever the time zone."""
    moment = datetime.now().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=days_ago)
    return moment.timestamp()


@pytest.fixture
def history(home):
    """Three emails sent 5 days ago; person opens on 4 days (1, 1, 1, 2 a day) and one HEAD."""
    secret = read_secret(home.secret_path)
    ids = {}
    for name, subject in (("Ann", "Offer <b>new</b> & roof"), ("Bob", "Invoice 42"), ("Cy", "Hello")):
        ids[name] = mint_token(secret)
        append_rows(home.tags_path, TAG_COLUMNS, [[ids[name], utc_timestamp(_noon(5)), name, subject,
                                                  f"{name.lower()}@example.org", "", "", "sent"]])
    hits = home.hits_dir(load_config(home)) / "hits-a-2026-11-24.csv"
    write_hits(hits, [(1, ids["Ann"], "GET", utc_timestamp(_noon(4))),
                      (2, ids["Bob"], "HEAD", utc_timestamp(_noon(3) - 8 * 3600)),
                      (3, ids["Bob"], "GET", utc_timestamp(_noon(3))),
                      (4, ids["Ann"], "GET", utc_timestamp(_noon(2)))], agent=OUTLOOK)
    write_hits(hits, [(5, ids["Ann"], "GET", utc_timestamp(_noon(1))),
                      (6, ids["Bob"], "GET", utc_timestamp(_noon(1) + 7200))], agent=THUNDERBIRD)
    fold(home)
    return ids


class _Table(HTMLParser):
    """The report's table rows and tiles, as text."""

    def __init__(self):
        super().__init__()
        self.rows, self.tiles, self._cell, self._tile = [], {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and attrs.get("id", "").startswith("t-"):
            self.rows.append([])
        elif tag == "td" and self.rows:
            self._cell = ""
        elif tag == "div" and "data-key" in attrs:
            self._tile = attrs["data-key"]

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        elif self._tile is not None:
            self.tiles[self._tile] = int(data)
            self._tile = None


def test_report_numbers_are_the_registers(home, history):
    """Every email's opens, self, machine and total hits in the table, and the totals, match register.csv."""
    page = write_report(home).read_text(encoding="utf-8")
    table = _Table()
    table.feed(page)
    register = {row["short_id"]: row for row in read_register(home.register_path)}
    assert len(table.rows) == 3
    for short_id, _, _, _, opens, _, _, clicks, replies, own, machines, hits, *_ in table.rows:
        row = register[short_id]
        assert (opens, clicks, replies, own, machines, hits) == (
            row["opens"], row["clicks"], row["replies"], row["self_hits"], row["machine_hits"], row["hits"])
    assert table.tiles == {"tracked": 3, "opened": 2, "opens": 5, "uncounted": 1}


def test_the_table_lists_the_newest_emails_and_says_where_the_others_are(home, history, monkeypatch):
    """Past its number of rows the table lists the newest emails and says that every one is in
    register.csv, and the timeline's note says so too; the tiles still count every email. (Fails
    when the table lists them all.)"""
    register = read_register(home.register_path)
    newest = [row["short_id"] for row in sorted(register, key=lambda row: (row["created"], row["id"]), reverse=True)]
    monkeypatch.setattr(report_module, "MAX_TIMELINE_ROWS", 1)
    page = write_report(home, table_rows=2).read_text(encoding="utf-8")
    table = _Table()
    table.feed(page)
    assert [row[0] for row in table.rows] == newest[:2]
    assert table.tiles == {"tracked": 3, "opened": 2, "opens": 5, "uncounted": 1}
    assert "The 2 newest of 3 tracked emails" in page and "register.csv" in page and "report --all" in page
    assert "The 1 newest emails are drawn; the table lists 2 of 3." in page
    everything = _Table()
    everything.feed(write_report(home, table_rows=None).read_text(encoding="utf-8"))
    assert [row[0] for row in everything.rows] == newest
    # The tray opens the report at an email's row: an older email picked there is listed too.
    oldest = next(row["id"] for row in register if row["short_id"] == newest[-1])
    picked = _Table()
    picked.feed(write_report(home, table_rows=1, picked=[oldest]).read_text(encoding="utf-8"))
    assert [row[0] for row in picked.rows] == [newest[0], newest[-1]]


def _days_drawn(page: str):
    """The opens-per-day chart's bars ({local day: opens}) and its word on the earlier opens."""
    chart = page[page.index('<svg class="days"'):page.index("<h2>Open timeline per email</h2>")]
    bars = {day: int(opens) for day, opens in re.findall(r'data-day="([^"]+)" data-opens="(\d+)"', chart)}
    earlier = re.search(r"(\d+) earlier opens", chart)
    return bars, int(earlier.group(1)) if earlier else 0


def test_the_opens_per_day_count_every_email_whichever_the_report_reads(home, monkeypatch):
    """The chart's bars and its earlier opens are the same when the report reads the hits of every
    email and when it reads only those it lists and draws (a busy sender's 50,000 are not read):
    an email last opened before the chart's first day adds its opens to the earlier ones, one
    opened since adds its opens on each day. (Fails when the emails not read are left out.)"""
    secret = read_secret(home.secret_path)
    tags = {}
    for name, made in (("Old", 100), ("Both", 75), ("New", 5), ("None", 1)):
        tags[name] = mint_token(secret)
        append_rows(home.tags_path, TAG_COLUMNS, [[tags[name], utc_timestamp(_noon(made)), name, "Hi",
                                                  f"{name.lower()}@example.org", "", "", "sent"]])
    hits = home.hits_dir(load_config(home)) / "hits-a-2026-11-24.csv"
    write_hits(hits, [(1, tags["Old"], "GET", utc_timestamp(_noon(90))),
                      (2, tags["Old"], "GET", utc_timestamp(_noon(80))),
                      (3, tags["Both"], "GET", utc_timestamp(_noon(70))),
                      (4, tags["Both"], "GET", utc_timestamp(_noon(3))),
                      (5, tags["New"], "GET", utc_timestamp(_noon(2))),
                      (6, tags["New"], "GET", utc_timestamp(_noon(1)))])
    fold(home)
    every = _days_drawn(write_report(home, table_rows=None).read_text(encoding="utf-8"))
    def day(days_ago: int) -> str:
        return datetime.fromtimestamp(_noon(days_ago)).date().isoformat()

    assert every == ({day(3): 1, day(2): 1, day(1): 1}, 3)
    monkeypatch.setattr(report_module, "MAX_TIMELINE_ROWS", 1)  # the newest email alone is drawn
    assert _days_drawn(write_report(home, table_rows=1).read_text(encoding="utf-8")) == every


def test_report_is_self_contained_and_escapes_what_people_typed(home, history):
    """No script, no fetched resource, a CSP that forbids them; a subject's markup shows as text."""
    page = write_report(home).read_text(encoding="utf-8")
    assert "<script" not in page and "src=" not in page and "http" not in page.replace(
        "http-equiv", "").replace("http://www.w3.org", "")
    assert "default-src 'none'" in page
    assert "Offer &lt;b&gt;new&lt;/b&gt; &amp; roof" in page and "<b>new</b>" not in page


def _render(html: Path, png: Path, tmp_path: Path, size=(1000, 1400)) -> None:
    require("chromium")
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
         "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size={size[0]},{size[1]}",
         f"--screenshot={png}", html.as_uri()],
        check=True, capture_output=True, timeout=90)


def _hex(colour: str):
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def _blobs(image, colour):
    """Connected areas of exactly this colour: (pixel count, box)."""
    width, height = image.size
    data = image.convert("RGB").tobytes()
    target = bytes(_hex(colour))
    hit = {i for i in range(width * height) if data[3 * i:3 * i + 3] == target}
    blobs = []
    while hit:
        stack = [hit.pop()]
        members = []
        while stack:
            i = stack.pop()
            members.append(i)
            x, y = i % width, i // width
            for j in ((i - 1) if x else None, (i + 1) if x < width - 1 else None,
                      i - width if y else None, i + width if y < height - 1 else None):
                if j is not None and j in hit:
                    hit.remove(j)
                    stack.append(j)
        xs, ys = [i % width for i in members], [i // width for i in members]
        blobs.append((len(members), (min(xs), min(ys), max(xs), max(ys))))
    return blobs


@pytest.mark.slow
def test_chromium_draws_the_opens_per_day_and_the_timeline(home, history, tmp_path):
    """Rendered by headless Chromium: four day bars of heights 1:1:1:2, one dot per person open, the HEAD apart."""
    from PIL import Image

    png = tmp_path / "report.png"
    _render(write_report(home), png, tmp_path)
    if ARTIFACTS:
        Path(ARTIFACTS).mkdir(parents=True, exist_ok=True)
        Image.open(png).save(Path(ARTIFACTS) / "report.png")
    image = Image.open(png)

    bars = sorted(box for size, box in _blobs(image, BAR_COLOUR) if size > 50)
    heights = [bottom - top + 1 for _, top, _, bottom in bars]
    assert len(bars) == 4, bars
    assert heights[3] == pytest.approx(2 * heights[0], abs=2)
    assert heights[0] == pytest.approx(heights[1], abs=1) == pytest.approx(heights[2], abs=1)

    dots = [box for size, box in _blobs(image, LABEL_COLOURS["open"]) if size > 80]
    register = read_register(home.register_path)
    assert len(dots) == sum(int(row["opens"]) for row in register) == 5
    rows = sorted({top for _, top, _, _ in dots})
    assert len(rows) == 2  # Ann's and Bob's timelines; Cy was never opened
    machine = [box for size, box in _blobs(image, LABEL_COLOURS["prefetch"]) if size > 25]
    assert len(machine) == 2  # the HEAD in Bob's row, and its dot in the legend


def test_report_groups_the_copies_sent_individually(home):
    """The copies of one email sent individually stand together in the table, each with its
    recipient and the group's first characters; a lone tag between them stays apart."""
    from mailtracker.desktop.tags import mint_tag

    config = load_config(home)
    first = mint_tag(home, config, subject="Offer", recipients=["ann@x.org"], status="sent", group="grp-0001-x")
    lone = mint_tag(home, config, name="Lone", subject="Other", status="sent")
    second = mint_tag(home, config, subject="Offer", recipients=["bob@x.org"], status="sent", group="grp-0001-x")
    fold(home)
    table = _Table()
    table.feed(write_report(home).read_text(encoding="utf-8"))
    ids = [row[0] for row in table.rows]
    assert abs(ids.index(first.short_id) - ids.index(second.short_id)) == 1, ids
    groups = {row[0]: row[-1] for row in table.rows}
    assert groups[first.short_id] == groups[second.short_id] == "grp-0001" and groups[lone.short_id] == ""


def test_listing_the_newest_email_lists_every_copy_of_it(home):
    """When the table lists only the newest emails and the newest was sent individually, its older
    copy is listed too, beside it, and an email sent between the copies is not. (Fails when the
    table is cut after the newest.)"""
    secret = read_secret(home.secret_path)
    ids = {}
    for name, minutes_ago, group in (("Ann", 3, "grp-0002-x"), ("Lone", 2, ""), ("Bob", 1, "grp-0002-x")):
        ids[name] = mint_token(secret)
        append_rows(home.tags_path, TAG_COLUMNS, [[ids[name], utc_timestamp(_noon(0) - 60 * minutes_ago), name,
                                                  "Offer", f"{name.lower()}@example.org", "", "", "sent", group]])
    fold(home)
    table = _Table()
    table.feed(write_report(home, table_rows=1).read_text(encoding="utf-8"))
    assert [row[0] for row in table.rows] == [ids["Bob"][:7], ids["Ann"][:7]]


@pytest.mark.slow
def test_the_tables_times_stay_on_one_line_in_a_narrow_window(home, history, tmp_path):
    """Laid out by headless Chromium 900 px wide: every date cell of the email table is one line
    (they used to wrap onto three). The report's CSP forbids scripts, so a copy without it
    carries one that counts each cell's line boxes."""
    require("chromium")
    page = write_report(home).read_text(encoding="utf-8")
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    probe = ("<script>document.body.dataset.lines = JSON.stringify([...document.querySelectorAll('table.emails td.t')]"
             ".filter(td => td.textContent.trim()).map(td => { const r = document.createRange(); "
             "r.selectNodeContents(td); return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; }));"
             "</script></body>")
    copy = tmp_path / "report-probe.html"
    copy.write_text(page.replace("</body>", probe), encoding="utf-8")
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
         "--window-size=900,1200", "--dump-dom", copy.as_uri()],
        check=True, capture_output=True, text=True, timeout=90)
    lines = json.loads(html_module.unescape(re.search(r'data-lines="([^"]*)"', proc.stdout).group(1)))
    assert lines and set(lines) == {1}, lines
