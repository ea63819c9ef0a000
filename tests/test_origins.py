"""Network origins: published ranges in, a short stable origin name out, per address."""

import gzip
import json

import pytest

from mailtracker.core.origins import (
    ASN_ORIGINS, ORIGINS, SHIPPED_TABLE, OriginTable, Origins, Source, address_key, describe, fetch_conditional,
    format_snapshot, parse_apple_egress, parse_asn_ranges, parse_google_ranges,
    parse_m365_endpoints, parse_snapshot, parse_span, table_bytes, table_path_of,
)


SMALL = """\
# built: 2026-12-01
# source: {"id": "m365", "url": "https://endpoints.office.com/endpoints/worldwide", "date": "2023-07-31", "licence": "published by Microsoft"}
# source: {"id": "asn", "url": "https://db-ip.com/db/download/ip-to-asn-lite", "date": "2026-06-17", "licence": "CC BY 4.0"}
# source: {"id": "apple-egress", "url": "https://mask-api.icloud.com/egress-ip-ranges.csv", "date": "2026-08-17", "licence": "Apple"}
# source: {"id": "google-goog", "url": "https://www.gstatic.com/ipranges/goog.json", "date": "2024-04-25", "licence": "Google"}
# source: {"id": "google-cloud", "url": "https://www.gstatic.com/ipranges/cloud.json", "date": "2026-07-01", "licence": "Google"}
network,origin,source
40.64.0.0/10,microsoft,asn
40.107.0.0/16,microsoft-eop,m365
2a01:111:f400::/48,microsoft-eop,m365
172.224.0.0-172.224.255.255,aws,asn
172.224.226.0/27,apple-relay,apple-egress
2a02:26f7:b3c0:4000::/64,apple-relay,apple-egress
34.0.0.0/10,google,google-goog
34.2.0.0/16,google-cloud,google-cloud
66.249.64.0/19,google,google-goog
"""


@pytest.fixture(scope="module")
def small():
    return Origins.from_snapshot(SMALL)


@pytest.mark.parametrize("address, origin", [
    ("40.107.22.7", "microsoft-eop"),      # EOP wins over the Microsoft ASN around it
    ("40.94.31.7", "microsoft"),           # Microsoft, but not a published M365 range
    ("2a01:111:f400::25", "microsoft-eop"),
    ("172.224.226.9", "apple-relay"),      # a relay inside another company's network
    ("172.224.227.9", "aws"),
    ("2a02:26f7:b3c0:4000:1:2:3:4", "apple-relay"),
    ("34.2.3.4", "google-cloud"),          # a customer's VM inside Google's published block
    ("34.3.0.1", "google"),
    ("66.249.84.1", "google"),
    ("203.0.113.5", ""),
    ("2001:db8::1", ""),
])
def test_lookup_names_the_most_specific_published_origin(small, address, origin):
    """Nested ranges resolve to the narrowest publisher; outside every range: ''."""
    assert small.lookup(address) == origin


@pytest.mark.parametrize("address", ["::ffff:40.107.22.7", "[40.107.22.7]", " 40.107.22.7 "])
def test_lookup_reads_the_forms_a_server_sees(small, address):
    """An IPv4-mapped IPv6 address, brackets and stray spaces are the same client."""
    assert small.lookup(address) == "microsoft-eop"


@pytest.mark.parametrize("address", ["", "garbage", "1.2.3", "300.1.2.3", "01.2.3.4", "fe80::1%eth0x::"])
def test_lookup_of_something_that_is_no_address_is_unknown(small, address):
    """Anything that is not a strict address is unknown, never an exception."""
    assert small.lookup(address) == ""


def test_a_zone_index_is_ignored():
    """fe80::1%eth0 is fe80::1: the zone names our interface, not the client."""
    assert address_key("fe80::1%eth0") == address_key("fe80::1")


def test_the_range_ends_are_inclusive(small):
    """The first and last address of a span belong to it; the next one does not."""
    assert small.lookup("40.107.0.0") == small.lookup("40.107.255.255") == "microsoft-eop"
    assert small.lookup("40.108.0.0") == "microsoft"
    assert small.lookup("40.127.255.255") == "microsoft" and small.lookup("40.128.0.0") == ""


def test_the_snapshot_round_trips_and_names_its_sources(small):
    """format_snapshot and parse_snapshot are inverses; every source keeps its date."""
    again = parse_snapshot(format_snapshot(small, "2026-12-01"))
    assert sorted(again.rows) == sorted(small.rows)
    assert {s.id: s.date for s in again.sources}["m365"] == "2023-07-31"


def test_a_snapshot_row_with_an_unknown_origin_is_refused_with_its_line():
    """A typo in an origin name fails loudly at load, naming the line."""
    with pytest.raises(ValueError, match="line 9"):
        parse_snapshot(SMALL.replace("40.107.0.0/16,microsoft-eop", "40.107.0.0/16,microsoft-epo"))


def test_replacing_one_source_keeps_the_others(small):
    """`ranges update` swaps one publisher's rows and leaves the rest as they were."""
    fresh = small.replace_source(Source("apple-egress", "u", "2026-12-01", "Apple"),
                                 [(*parse_span("146.75.180.0/24"), "apple-relay")])
    assert fresh.lookup("146.75.180.9") == "apple-relay"
    assert fresh.lookup("172.224.226.9") == "aws"  # the relay left Apple's list
    assert fresh.lookup("40.107.1.1") == "microsoft-eop"
    assert small.lookup("146.75.180.9") == ""      # the old object is unchanged


def test_each_instance_has_its_own_cache(small):
    """A cached answer of an old snapshot never leaks into a new one."""
    other = Origins.from_snapshot(SMALL.replace("34.2.0.0/16,google-cloud", "34.2.0.0/16,google"))
    assert small.lookup("34.2.9.9") == "google-cloud" and other.lookup("34.2.9.9") == "google"


def test_every_origin_reads_as_words():
    """Each stored origin name has a description; unknown reads as a network kind."""
    assert all(describe(name) for name in ORIGINS)
    assert describe("") == "a residential or unknown network"
    assert set(ASN_ORIGINS.values()) <= set(ORIGINS)


# --- native formats ------------------------------------------------------------------------

def test_google_ranges_parse_with_their_creation_day():
    """goog.json and cloud.json: both address families, and the publisher's date."""
    text = json.dumps({"syncToken": "1", "creationTime": "2024-04-25T07:05:03.68994", "prefixes": [
        {"ipv4Prefix": "66.249.64.0/19"}, {"ipv6Prefix": "2001:4860::/32"},
        {"ipv4Prefix": "34.80.0.0/15", "service": "Google Cloud", "scope": "asia-east1"}]})
    day, spans = parse_google_ranges(text, "google")
    assert day == "2024-04-25"
    assert [(v, origin) for v, _, _, origin in spans] == [(4, "google"), (6, "google"), (4, "google")]


def test_m365_endpoints_split_protection_from_the_rest():
    """Endpoint sets on *.protection.outlook.com are EOP; other published ranges are M365."""
    text = json.dumps([
        {"id": 1, "serviceArea": "Exchange", "urls": ["outlook.office.com"], "ips": ["40.96.0.0/13"]},
        {"id": 10, "serviceArea": "Exchange", "urls": ["*.mail.protection.outlook.com"],
         "ips": ["40.92.0.0/15", "2a01:111:f403::/48"]},
        {"id": 3, "serviceArea": "Exchange", "urls": ["r1.res.office365.com"]},  # URLs only
    ])
    origins = Origins([Source("m365", "u", "d", "l")],
                      [("m365", *span) for span in parse_m365_endpoints(text)])
    assert origins.lookup("40.93.1.1") == "microsoft-eop"
    assert origins.lookup("2a01:111:f403::1") == "microsoft-eop"
    assert origins.lookup("40.97.1.1") == "microsoft-365"


def test_apple_egress_csv_merges_its_rows_and_names_a_bad_line():
    """Apple's per-city rows collapse into spans; a line that is no network is refused."""
    text = "172.224.226.0/28,US,US-CA,Los Angeles,\n172.224.226.16/28,US,US-NY,New York,\n"
    assert len(parse_apple_egress(text)) == 1
    with pytest.raises(ValueError, match="line 2"):
        parse_apple_egress(text.replace("172.224.226.16/28", "not-a-network"))


def test_asn_csv_keeps_only_the_asns_asked_for_and_joins_neighbours():
    """DB-IP's ip-to-asn-lite rows: chosen ASNs kept, adjacent rows of one origin merged, a
    row whose ASN is not a number skipped."""
    text = ('40.64.0.0,40.64.255.255,8075,Microsoft Corporation\n'
            '40.65.0.0,40.65.255.255,8075,Microsoft Corporation\n'
            '1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc."\n'
            '2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,15169,Google LLC\n'
            '9.9.9.0,9.9.9.255,\u00b2,a number int() refuses\n')  # skipped, not a ValueError
    spans = parse_asn_ranges(text, {8075: "microsoft", 15169: "google"})
    assert [(v, origin) for v, _, _, origin in spans] == [(4, "microsoft"), (6, "google")]
    assert spans[0][2] - spans[0][1] + 1 == 2 * 65536


def test_the_shipped_snapshot_knows_the_providers_of_the_issue():
    """The dated snapshot in the package labels a documented address of each provider."""
    origins = Origins.shipped()
    expected = {
        "40.107.22.1": "microsoft-eop",      # EOP, published by Microsoft
        "66.249.84.1": "google",             # Gmail's image proxy network
        "146.75.180.1": "apple-relay",       # a relay in Apple's egress list
        "148.163.128.1": "proofpoint",
        "205.139.110.1": "mimecast",
        "64.235.144.1": "barracuda",
        "208.90.57.1": "cisco",
        "66.196.80.1": "yahoo",
        "198.51.100.7": "",                  # documentation range: nobody's
    }
    assert {address: origins.lookup(address) for address in expected} == expected
    assert all(s.date for s in origins.sources)


def test_the_shipped_table_is_made_from_the_shipped_snapshot():
    """The lookup table in the package (what each pixel server worker reads) is exactly the one
    the shipped snapshot makes; after changing the snapshot, run
    python -c 'from mailtracker.core.origins import write_shipped_table; write_shipped_table()'."""
    text = gzip.decompress(SHIPPED_TABLE.with_name("origins-snapshot.csv.gz").read_bytes()).decode()
    assert SHIPPED_TABLE.read_bytes() == table_bytes(text)
    loaded, origins = OriginTable.load(cache=0), Origins.shipped()
    assert loaded._starts[4].__class__.__name__ == "array" and len(loaded) == len(origins)
    for address in ("40.107.22.1", "66.249.84.1", "146.75.180.1", "2a01:111:f400::25", "198.51.100.7"):
        assert loaded.lookup(address) == origins.lookup(address)


@pytest.mark.parametrize("address", ["40.107.22.7", "40.94.31.7", "2a01:111:f400::25", "172.224.226.9",
                                     "172.224.227.9", "2a02:26f7:b3c0:4000:1:2:3:4", "34.2.3.4", "203.0.113.5",
                                     "40.64.0.0", "40.127.255.255", "2001:db8::1", "not an address"])
def test_a_table_read_back_from_its_file_answers_as_the_snapshot(small, address, tmp_path, monkeypatch):
    """A snapshot written by 'ranges update' gets its table beside it; the table read back from
    that file (the rows are not read again) gives every answer the snapshot gives."""
    snapshot = tmp_path / "origins-snapshot.csv"
    snapshot.write_text(SMALL)
    table_path_of(snapshot).write_bytes(table_bytes(SMALL))
    monkeypatch.setattr(OriginTable, "read", None)
    assert OriginTable.load(snapshot).lookup(address) == small.lookup(address)


def test_a_table_made_from_another_snapshot_or_damaged_is_not_used(tmp_path):
    """The table names the snapshot it was made from: beside a changed snapshot, or cut short,
    it is ignored and the snapshot's own rows answer."""
    snapshot = tmp_path / "origins-snapshot.csv"
    changed = SMALL.replace("40.107.0.0/16,microsoft-eop,m365", "40.107.0.0/16,google,m365")
    snapshot.write_text(changed)
    stale = table_bytes(SMALL)
    table_path_of(snapshot).write_bytes(stale)
    assert OriginTable.load(snapshot).lookup("40.107.22.7") == "google"
    digest = stale[len(b"mailtracker origins table 1\n"):][:32]
    for damaged in (stale[:-1], stale + b"x", stale[:60]):
        assert OriginTable.from_bytes(damaged, digest) is None


# --- updating ------------------------------------------------------------------------------

# The providers' servers are out of reach here: a stand-in session answers as they do.
class FakeResponse:
    def __init__(self, status, content=b"", headers=None):
        self.status_code, self.content, self.headers = status, content, headers or {}

    def raise_for_status(self):
        if self.status_code >= 400:
            raise RuntimeError(self.status_code)


class FakeSession:
    def __init__(self, response):
        self.response, self.calls = response, []

    def get(self, url, headers, timeout):
        self.calls.append((url, headers, timeout))
        return self.response


def test_an_unchanged_list_is_not_downloaded_again_fake_session():
    """With the stored ETag, a 304 means nothing changed and nothing is parsed."""
    session = FakeSession(FakeResponse(304))
    fetched = fetch_conditional(session, "https://www.gstatic.com/ipranges/goog.json", etag='"abc"')
    assert not fetched.changed and fetched.etag == '"abc"'
    assert session.calls[0][1] == {"If-None-Match": '"abc"'} and session.calls[0][2] > 0


def test_a_changed_list_comes_with_its_new_validators_fake_session():
    """A 200 brings the text (gunzipped where the URL says .gz) and the new ETag."""
    body = gzip.compress(b"1.0.0.0,1.0.0.255,13335,Cloudflare\n")
    session = FakeSession(FakeResponse(200, body, {"ETag": '"new"', "Last-Modified": "Tue"}))
    fetched = fetch_conditional(session, "https://download.db-ip.com/free/dbip-asn-lite-2026-12.csv.gz")
    assert fetched.changed and fetched.text.startswith("1.0.0.0") and fetched.etag == '"new"'


def test_anything_that_is_not_an_address_has_no_origin(small):
    """A client column from anywhere (a NUL, a word, an empty string) is looked up without an error."""
    for text in ("\x00", "1.2.3.4\x00", "::1\x00x", "", "not an address", "[::1", "1.2.3"):
        assert small.lookup(text) == ""
