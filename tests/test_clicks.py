"""Click tracking on the server: signed, stateless redirects that cannot be bent."""

import json
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from mailtracker.core.clicks import MAX_LINKS, ClickVerifier, _signature, click_url, is_trackable_target
from mailtracker.core.weburl import browser_href
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import load_config
from mailtracker.core.tokens import mint_token
from tests.conftest import PixelServer
from tests.tools import require_tool

# Tricky link targets, shared with the add-on's tests (extension/tests/links.test.mjs).
URL_TARGETS = json.loads((Path(__file__).parent / "data" / "url_targets.json").read_text("utf-8"))["targets"]


def whatwg(urls):
    """What a browser makes of each URL (Node's WHATWG URL): {href, protocol, host} or None."""
    node = require_tool("node", "nodejs")
    script = Path(__file__).parent / "whatwg_href.mjs"
    done = subprocess.run([node, str(script)], input=json.dumps(urls), capture_output=True,
                          text=True, timeout=60, check=True)
    return json.loads(done.stdout)

TARGET = "https://shop.example.org/offer?id=42&ref=mail#terms"


@pytest.fixture(scope="module")
def clicks(tmp_path_factory):
    """One real pixel server for the module, with the home's secret and a minted tag."""

    from mailtracker.core.paths import Home
    from mailtracker.core.settings import init_home

    root = tmp_path_factory.mktemp("clickhome")
    home = Home.locate(str(root))
    init_home(home)
    secret = read_secret(home.secret_path)
    server = PixelServer(home)
    base = f"{server.base}/p/"
    try:
        yield home, server, secret, base, mint_token(secret)
    finally:
        server.stop()


def _get(url, method="GET", **headers):
    return requests.request(method, url, allow_redirects=False, timeout=10,
                            headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Outlook/16.0", **headers})


def test_a_signed_link_redirects_to_exactly_the_original(clicks):
    """Path, query and fragment come back unchanged, and the click is in the hits file first."""
    home, server, secret, base, tag = clicks
    before = len(server.hit_lines())
    reply = _get(click_url(base, secret, tag, 3, TARGET))
    assert reply.status_code == 302 and reply.headers["Location"] == TARGET
    assert reply.headers["Cache-Control"].startswith("no-store")
    lines = server.hit_lines()[before:]
    assert len(lines) == 1 and f",{tag},click:3:GET," in lines[0]


def test_non_ascii_targets_keep_their_meaning_in_the_header(clicks):
    """An IRI is sent percent-encoded, and a target already encoded stays as it was."""
    home, server, secret, base, tag = clicks
    reply = _get(click_url(base, secret, tag, 0, "https://example.org/café?q=a%20b"))
    assert reply.status_code == 302
    assert reply.headers["Location"] == "https://example.org/caf%C3%A9?q=a%20b"
    assert browser_href("https://example.org/a b") == "https://example.org/a%20b"


# What int(..., 32) reads as the base32 letter (a, b, i, j are 0, 1, 8, 9): not base32.
_SAME_DIGIT = {"a": "0", "b": "1", "i": "8", "j": "9"}


@pytest.mark.parametrize("tamper", [
    "changed target", "changed link", "other tag", "truncated signature", "extra parameter",
    "second target", "no target", "changed case", "digit for a letter", "padding bits set",
    "superscript link number",
])
def test_a_tampered_click_url_is_a_404_page_never_a_redirect(clicks, tamper):
    """Every change to a signed URL fails its check: a plain page, and nothing is logged, also
    right after the genuine URL was followed (the server remembers URLs that verified)."""
    home, server, secret, base, tag = clicks
    # A link whose signature holds a, b, i or j (for "digit for a letter").
    link = next(n for n in range(3, MAX_LINKS)
                if set(_SAME_DIGIT) & set(click_url(base, secret, tag, n, TARGET).partition("?")[0][-20:-1]))
    url = click_url(base, secret, tag, link, TARGET)
    path, _, query = url.partition("?")
    sig = path.rsplit("/", 1)[1]
    letter = next(char for char in sig[:-1] if char in _SAME_DIGIT)
    last = "abcdefghijklmnopqrstuvwxyz234567".index(sig[-1])  # its low 4 bits are padding, zero
    bent = {
        "changed target": f"{path}?u={quote('https://evil.example/', safe='')}",
        "changed link": path.replace(f"/{link}/", f"/{link + 1}/") + "?" + query,
        "other tag": path.replace(tag, mint_token(secret)) + "?" + query,
        "truncated signature": path[:-1] + "?" + query,
        "extra parameter": f"{url}&next=https://evil.example/",
        "second target": f"{url}&u=https://evil.example/",
        "no target": path,
        "changed case": path.replace(sig, sig.upper()) + "?" + query,
        "digit for a letter": path.replace(sig, sig.replace(letter, _SAME_DIGIT[letter], 1)) + "?" + query,
        "padding bits set": path[:-1] + "abcdefghijklmnopqrstuvwxyz234567"[last + 1] + "?" + query,
        # str.isdigit() says yes to '²'; int() does not take it.
        "superscript link number": path.replace(f"/{link}/", f"/{quote('²')}/") + "?" + query,
    }[tamper]
    assert _get(url).status_code == 302
    before = len(server.hit_lines())
    reply = _get(bent)
    assert reply.status_code == 404 and "Location" not in reply.headers
    assert "Link not found" in reply.text
    assert len(server.hit_lines()) == before


@pytest.mark.parametrize("target", ["javascript:alert(1)", "data:text/html,<script>x</script>",
                                    "//evil.example/", "ftp://example.org/", "https:///", "https://:443/"])
def test_only_http_and_https_targets_are_ever_signed(target):
    """javascript:, data:, scheme-relative and hostless targets are refused at signing
    (a CR LF in a link is dropped, as a browser does: tests/data/url_targets.json)."""
    assert not is_trackable_target(target)
    with pytest.raises(ValueError):
        click_url("https://t.example.org/p/", b"s" * 32, "a" * 32, 0, target)


def test_a_forged_javascript_target_is_refused_even_with_a_valid_looking_signature(clicks):
    """The server checks the scheme itself, not only the signature."""
    home, server, secret, base, tag = clicks
    verify = ClickVerifier(secret)
    sig = _signature(secret, tag, 0, "javascript:alert(1)")
    path = f"/p/c/{tag}/0/{sig}"
    assert verify(path, b"u=" + quote("javascript:alert(1)", safe="").encode()) is None
    assert _get(f"{server.base}{path}?u={quote('javascript:alert(1)', safe='')}").status_code == 404


def test_a_verifier_that_remembers_urls_refuses_exactly_what_it_refused_before():
    """Remembering verified click URLs (the server's) changes no answer: tampered URLs, sent
    before, between and after the genuine ones and more of them than it remembers, are all
    refused, and every genuine URL still leads to its target after the memory was emptied."""
    secret = b"s" * 32
    verify = ClickVerifier(secret, remember=2)
    tag = mint_token(secret)
    genuine, tampered = [], []
    for link in range(5):
        path, _, query = click_url("/p/", secret, tag, link, f"{TARGET}&n={link}").partition("?")
        genuine.append((path, query.encode()))
        tampered += [(path, f"u={quote('https://evil.example/', safe='')}".encode()),
                     (path.replace(f"/{link}/", f"/{link + 5}/"), query.encode()),
                     (path[:-1] + ("a" if path[-1] != "a" else "b"), query.encode()),
                     (path, query.encode() + b"&next=x")]
    for _ in range(3):
        assert [verify(*url) for url in tampered] == [None] * len(tampered)
        assert [verify(*url) for url in genuine] == [(tag, n, f"{TARGET}&n={n}") for n in range(5)]


def test_head_gets_the_redirect_and_is_logged_as_a_head_click(clicks):
    """A gateway checking the link (HEAD) still gets the redirect: a dead link looks like phishing."""
    home, server, secret, base, tag = clicks
    before = len(server.hit_lines())
    reply = _get(click_url(base, secret, tag, 1, TARGET), method="HEAD")
    assert reply.status_code == 302 and reply.headers["Location"] == TARGET
    assert ",click:1:HEAD," in server.hit_lines()[before]


def test_other_methods_are_refused(clicks):
    """POST to a click URL is not a click."""
    home, server, secret, base, tag = clicks
    assert requests.post(click_url(base, secret, tag, 1, TARGET), allow_redirects=False).status_code == 405


def test_a_click_url_of_another_secret_is_not_followed(clicks):
    """Signed under another secret (another user's server): not a redirect."""
    home, server, secret, base, tag = clicks
    assert _get(click_url(base, b"x" * 32, tag, 1, TARGET)).status_code == 404
    assert load_config(home).pixel_base().endswith("/p/")


CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def test_clicks_are_counted_per_mail_and_per_link_and_machines_are_labelled(home):
    """A person's click counts once a minute per link; HEAD, a scanner and a gateway on delivery do not."""
    from mailtracker.desktop.fold import fold
    from mailtracker.desktop.tags import mint_tag, record_links, record_self_fetch
    from tests.conftest import row_of, timeline_of, write_hits

    tag = mint_tag(home, load_config(home), name="Ann", subject="Offer")
    record_links(home, tag.id, [(0, "https://shop.example.org/offer", "the offer"),
                                (1, "https://example.org/unsubscribe", "unsubscribe")])
    record_self_fetch(home, tag.id, "send", when="2026-11-24T10:00:00.000Z")
    hits = home.hits_dir(load_config(home)) / "hits-a-2026-11-24.csv"
    write_hits(hits, [(1, tag.id, "click:0:GET", "2026-11-24T10:00:02.000Z")], agent=CHROME)  # on delivery
    write_hits(hits, [(2, tag.id, "click:0:HEAD", "2026-11-24T11:00:00.000Z")], agent=CHROME)
    write_hits(hits, [(3, tag.id, "click:0:GET", "2026-11-24T11:00:00.000Z")], agent="Mimecast URL check")
    write_hits(hits, [(4, tag.id, "click:0:GET", "2026-11-24T12:00:00.000Z"),
                      (5, tag.id, "click:0:GET", "2026-11-24T12:00:20.000Z")], agent=CHROME)  # a double click
    write_hits(hits, [(6, tag.id, "click:1:GET", "2026-11-24T13:00:00.000Z")], agent=CHROME)
    fold(home)
    row = row_of(home, tag.id)
    assert (row["clicks"], row["first_click"], row["last_click"]) == (
        2, "2026-11-24T12:00:00.000Z", "2026-11-24T13:00:00.000Z")
    assert row["opens"] == 0 and row["opened"] is True  # a click proves the mail was read
    assert [(link["text"], link["clicks"]) for link in row["links"]] == [("the offer", 1), ("unsubscribe", 1)]
    labels = [(label, counted) for _, label, counted, _, _ in timeline_of(home, tag.id)]
    assert labels == [("prefetch", 0), ("prefetch", 0), ("prefetch", 0), ("click", 1), ("click", 0), ("click", 1)]
    register = (home.register_path).read_text(encoding="utf-8-sig").splitlines()
    assert ",clicks,first_click,last_click" in register[0]


def test_the_host_signs_only_http_links_and_notes_them(home):
    """'links' gives a click URL per http(s) link and null for the rest; the targets reach show."""
    from tests.conftest import HostProcess, run_cli

    host = HostProcess(home)
    try:
        tag = host.call("mint", subject="s", recipients=["a@b.c"], identity="")["data"]
        reply = host.call("links", tag_id=tag["id"], links=[
            {"target": TARGET, "text": "the offer"}, {"target": "mailto:a@b.c", "text": "mail me"}])
        urls = reply["data"]["urls"]
        assert urls[1] is None and urls[0].startswith("http://127.0.0.1:56789/p/c/" + tag["id"] + "/0/")
        assert ClickVerifier(read_secret(home.secret_path))(
            urls[0].split("56789", 1)[1].split("?")[0], urls[0].split("?", 1)[1].encode()) == (tag["id"], 0, TARGET)
        forged = host.call("links", tag_id="b" * 32, links=[{"target": TARGET, "text": ""}])
        assert (forged["ok"], forged["code"]) == (False, 61)
    finally:
        host.close()
    run_cli("fold", home=home)
    assert "the offer" in run_cli("show", tag["short_id"], home=home).stdout


def test_the_helper_reads_every_tricky_target_as_a_browser_does():
    """Backslashes, userinfo, IDN, encoded separators, tabs and newlines: what the helper
    signs is what the WHATWG parser makes of the link, or the link is left untracked."""
    targets = [row["target"] for row in URL_TARGETS]
    hrefs = [browser_href(target) for target in targets]
    browser = whatwg(targets)
    again = whatwg([href for href in hrefs if href is not None])
    for row, href, original in zip(URL_TARGETS, hrefs, browser):
        if row["helper"] == "refused":
            assert href is None, row["name"]
            continue
        if row["helper"] == "fails":  # no browser opens it; signed, it fails just the same
            assert original is None and (href is None or again.pop(0) is None), row["name"]
            continue
        assert original is not None and original["protocol"] in ("http:", "https:"), row["name"]
        assert href is not None and href.isascii() and href.isprintable() and " " not in href, row["name"]
        assert again.pop(0)["href"] == original["href"], row["name"]


def test_a_click_leads_to_the_host_the_link_would_have_opened(clicks):
    """Through the real server: each tracked target's Location is, for a browser, the very
    URL the mail's link was; the backslash case stays on good.example."""
    home, server, secret, base, tag = clicks
    rows = [row for row in URL_TARGETS if row["helper"] == "same"]  # "fails": see above
    locations = []
    for row in rows:
        reply = _get(click_url(base, secret, tag, 0, row["target"]))
        assert reply.status_code == 302, row["name"]
        locations.append(reply.headers["Location"])
    browser = whatwg([row["target"] for row in rows] + locations)
    for row, original, followed in zip(rows, browser, browser[len(rows):]):
        assert followed is not None and followed["href"] == original["href"], row["name"]
    assert browser[rows.index(URL_TARGETS[1])]["host"] == "good.example"


def test_a_link_signed_as_written_still_leads_where_the_mail_led(clicks):
    """A click URL minted before targets were signed as a browser reads them (the raw
    href, backslash and all) redirects to the host the mail's link opened, not to the
    host a naive re-encoding names (https://good.example%5C@evil.example/ is evil.example)."""
    home, server, secret, base, tag = clicks
    target = "https://good.example\\@evil.example/"
    url = f"{base}c/{tag}/0/{_signature(secret, tag, 0, target)}?u={quote(target, safe='')}"
    reply = _get(url)
    assert reply.status_code == 302
    followed, original = whatwg([reply.headers["Location"], target])
    assert original["host"] == "good.example" and followed["host"] == "good.example"
