"""End to end with a real Thunderbird: Track, send, the pixel in the received mail,
no self-counting, and the recipient's open shown in Thunderbird."""

import csv
import io
from html.parser import HTMLParser

import pytest
import requests

from mailtracker.core.secret import read_secret
from mailtracker.core.tokens import verify_token
from mailtracker.desktop.fold import fold
from tests.conftest import row_of, wait_for

pytestmark = pytest.mark.slow


class ImageSources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs).get("src", ""))


def html_part(message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no HTML part in:\n{message.as_string()[:2000]}")


def pixels_in(message, desktop):
    parser = ImageSources()
    parser.feed(html_part(message))
    return [src for src in parser.sources if src.startswith(desktop.server.base)]


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1][: -len(".gif")]


def tag_rows(home, tag_id):
    text = home.tags_path.read_text(encoding="utf-8-sig") if home.tags_path.exists() else ""
    return [row for row in csv.DictReader(io.StringIO(text, newline="")) if row["id"] == tag_id]


def sent_row(home, tag_id):
    return next((row for row in tag_rows(home, tag_id) if row["status"] == "sent"), None)


def send_tracked(desktop, subject):
    desktop.tb.compose_and_send(subject, "Recipient <rcpt@example.net>")
    message = desktop.sink.wait_for_message(subject)
    (pixel,) = pixels_in(message, desktop)
    tag_id = token_of(pixel)
    wait_for(lambda: sent_row(desktop.home, tag_id), timeout=20, what="the tag marked sent")
    return message, tag_id


def test_options_page_grants_the_pixel_server_and_shows_it(desktop):
    """The options page names the pixel server; its button grants the host so our own
    Thunderbird's loads of the pixel can be blocked."""
    state = desktop.tb.in_extension_tab("options/options.html", """
        await waitFor(d => d.getElementById("server").textContent.includes(args[0]), "the server URL");
        await waitFor(d => d.getElementById("grantState").textContent, "the grant state");
        const grant = doc().getElementById("grant");
        if (!grant.hidden) grant.click();
        await waitFor(d => d.getElementById("grant").hidden, "the grant to be recorded");
        return doc().getElementById("grantState").textContent;
    """, [desktop.server.base])
    assert "granted" in state.lower() or "allowed" in state.lower(), state
    origins = desktop.tb.js(
        "resolve(WebExtensionPolicy.getByID(args[0]).allowedOrigins.patterns.map(p => p.pattern));",
        ["mailtracker@mailtracker.invalid"])
    assert "http://127.0.0.1/*" in origins


def test_tracked_send_carries_exactly_one_verifying_pixel(desktop):
    """Track on (the default): the received HTML has one pixel whose token verifies,
    and tags.csv records the email's Message-ID."""
    message, tag_id = send_tracked(desktop, "Tracked e2e")
    assert verify_token(read_secret(desktop.home.secret_path), tag_id)
    row = sent_row(desktop.home, tag_id)
    assert f"<{row['message_id']}>" == message["Message-ID"]
    minted = tag_rows(desktop.home, tag_id)[0]
    assert minted["subject"] == "Tracked e2e" and "rcpt@example.net" in minted["recipients"]


def test_track_off_sends_no_pixel(desktop):
    """With tracking off for the identity (options page), the email leaves without a pixel."""
    toggle = """
        const box = await waitFor(d => d.querySelector("#identities input[type=checkbox]"), "identities");
        if (box.checked !== args[0]) {
            box.click();
            await waitFor(d => !d.getElementById("saved").hidden, "the setting to be saved");
        }
        return box.checked;
    """
    assert desktop.tb.in_extension_tab("options/options.html", toggle, [False]) is False
    try:
        before = desktop.home.tags_path.read_text(encoding="utf-8-sig").count("\n")
        desktop.tb.compose_and_send("Untracked e2e", "rcpt@example.net")
        message = desktop.sink.wait_for_message("Untracked e2e")
        assert pixels_in(message, desktop) == []
        assert desktop.home.tags_path.read_text(encoding="utf-8-sig").count("\n") == before
    finally:
        assert desktop.tb.in_extension_tab("options/options.html", toggle, [True]) is True


def test_sender_displaying_the_sent_copy_with_remote_content_is_not_an_open(desktop):
    """Remote content allowed: showing the Sent copy may fetch the pixel; it never counts."""
    desktop.tb.set_pref("mailnews.message_display.disable_remote_image", False)
    try:
        message, tag_id = send_tracked(desktop, "Self e2e")
        message_id = message["Message-ID"].strip("<>")
        shown = desktop.tb.display_sent_message(message_id)
        wait_for(lambda: "display" in desktop.home.self_fetches_path.read_text(encoding="utf-8-sig"),
                 timeout=20, what="the extension to report the display")
    finally:
        desktop.tb.set_pref("mailnews.message_display.disable_remote_image", True)
    fold(desktop.home)
    row = row_of(desktop.home, tag_id)
    fetched = [line for line in desktop.server.hit_lines() if tag_id in line]
    print(f"Sent copy shown: images {shown['images']}; self fetches reaching the server: {len(fetched)}")
    assert row["opens"] == 0, f"a self fetch was counted as an open: {fetched}"
    assert row["self_hits"] == len(fetched)


def test_recipient_open_shows_in_thunderbird(desktop):
    """A recipient's client fetches the pixel: Thunderbird's Tracked mail page shows 1 open."""
    message, tag_id = send_tracked(desktop, "Opened e2e")
    reply = requests.get(f"{desktop.server.base}/p/{tag_id}.gif",
                         headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Outlook/16.0"})
    assert reply.status_code == 200
    opens = desktop.tb.in_extension_tab("tracked/tracked.html", """
        // The helper's daemon folds the hit and the page updates by itself: no reload, no click.
        const row = await waitFor(d => [...d.querySelectorAll("#tags tr")].find(
            tr => tr.textContent.includes("Opened e2e") && tr.textContent.includes(args[0])
                  && tr.querySelector("td.number").textContent === "1"), "the row with its open");
        return row.querySelector("td.number").textContent;
    """, [tag_id[:7]])
    assert opens == "1"


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.append(dict(attrs).get("href", ""))


CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def test_a_tracked_link_redirects_to_the_original_and_counts_a_person_once(desktop):
    """The received link points at the pixel server and leads to exactly the original; a link
    checker's HEAD and a scanner's GET are not counted; a person's double click counts once."""
    original = "https://shop.example.org/offer?id=42&ref=mail#terms"
    body = (f'<p>See <a href="{original.replace("&", "&amp;")}">the offer</a>, or write to '
            '<a href="mailto:me@example.org">me</a>.</p>')
    desktop.tb.compose_and_send("Link e2e", "Recipient <rcpt@example.net>", body)
    message = desktop.sink.wait_for_message("Link e2e")
    parser = Links()
    parser.feed(html_part(message))
    (tracked,) = [href for href in parser.links if href.startswith(desktop.server.base)]
    assert "mailto:me@example.org" in parser.links  # a mailto: link is left as written
    tag_id = tracked.split("/c/", 1)[1].split("/", 1)[0]
    wait_for(lambda: sent_row(desktop.home, tag_id), timeout=20, what="the tag marked sent")
    checker = requests.head(tracked, allow_redirects=False, headers={"User-Agent": CHROME})
    scanner = requests.get(tracked, allow_redirects=False, headers={"User-Agent": "Mimecast URL Protect"})
    assert checker.status_code == scanner.status_code == 302  # a gateway still gets the redirect
    for _ in range(2):  # a double click
        reply = requests.get(tracked, allow_redirects=False, headers={"User-Agent": CHROME})
        assert reply.status_code == 302 and reply.headers["Location"] == original
    # The host the add-on keeps open folds by itself; no fold is run here.
    wait_for(lambda: row_of(desktop.home, tag_id)["hits"] == 4, timeout=20, what="the four clicks folded")
    row = row_of(desktop.home, tag_id)
    assert (row["clicks"], row["machine_hits"], row["opened"]) == (1, 2, True)
    assert [(link["text"], link["target"], link["clicks"]) for link in row["links"]] == [
        ("the offer", original, 1)]
