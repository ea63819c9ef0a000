"""Minting tags: a row in tags.csv before the pixel exists, never lost or doubled."""

import csv
import io
import json
import subprocess
import sys

from mailtracker.core.secret import read_secret
from mailtracker.core.settings import load_config
from mailtracker.core.tokens import verify_token
from mailtracker.desktop.tags import mint_tag
from tests.conftest import run_cli


def _tag_rows(home):
    return list(csv.DictReader(io.StringIO(home.tags_path.read_text(encoding="utf-8-sig"), newline="")))


def test_mint_appends_a_row_and_returns_a_verifying_pixel(home):
    """A minted tag is in tags.csv, and its URL carries a token the server accepts."""
    tag = mint_tag(home, load_config(home), name="John", subject="Offer", recipients=["j@x.org", "k@y.org"])
    rows = _tag_rows(home)
    assert [r["id"] for r in rows] == [tag.id]
    assert rows[0]["name"] == "John" and rows[0]["recipients"] == "j@x.org; k@y.org"
    assert verify_token(read_secret(home.secret_path), tag.id)
    assert tag.url == f"http://127.0.0.1:56789/p/{tag.id}.gif"
    assert f'src="{tag.url}"' in tag.html and 'width="1"' in tag.html


def test_tag_command_prints_json_with_id_url_html(home):
    """`mailtracker tag --json` prints an object with at least id, url and html."""
    out = json.loads(run_cli("tag", "--name", "Ann", "--to", "a@x.org", "--json", home=home).stdout)
    assert {"id", "url", "html"} <= set(out)
    assert out["url"].endswith(out["id"] + ".gif")


def test_formula_in_a_name_is_neutralised_in_tags_csv(home):
    """A name or subject typed as a formula is stored inert and read back unchanged."""
    mint_tag(home, load_config(home), name="=HYPERLINK(\"http://evil\")", subject="+1")
    row = _tag_rows(home)[0]
    assert row["name"].startswith("'=") and row["subject"] == "'+1"


def test_eight_processes_minting_at_once_lose_and_duplicate_nothing(home):
    """8 processes x 40 tags at once: 320 distinct, well-formed rows, one header."""
    script = (
        "import sys\nfrom mailtracker.core.paths import Home\nfrom mailtracker.core.settings import load_config\nfrom mailtracker.desktop.tags import mint_tag\n"
        "home = Home.locate(sys.argv[1]); config = load_config(home)\n"
        "for i in range(40): mint_tag(home, config, name=f'p{sys.argv[2]}-{i}', subject='s, with \"quotes\"')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(home.data_dir), str(n)]) for n in range(8)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    rows = _tag_rows(home)
    assert len(rows) == 320
    assert len({r["id"] for r in rows}) == 320
    assert {r["name"] for r in rows} == {f"p{n}-{i}" for n in range(8) for i in range(40)}
    assert home.tags_path.read_text(encoding="utf-8-sig").count("id,created") == 1
