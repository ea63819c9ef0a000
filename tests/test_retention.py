"""Retention on the server: ``serve --retention-days N`` deletes its own old
hits files, never today's, never another server's."""

from datetime import date, datetime, timezone

from mailtracker.server.retention import prune_old_hits
from tests.conftest import PixelServer, run_cli

NAMES = [
    "hits-pixel-2026-03-10.csv",      # today
    "hits-pixel-2026-03-08.csv",      # 2 days ago: kept with N=2
    "hits-pixel-2026-03-07.csv",      # 3 days ago: deleted with N=2
    "hits-pixel.w2-2026-01-01.csv",   # a worker slot of this server: deleted
    "hits-pixel2-2026-01-01.csv",     # another server whose id starts the same: kept
    "hits-other-2026-01-01.csv",      # another server: kept
    "hits-pixel-2026-01-01.sync-conflict-20260101-000000-ABCDEFG.csv",  # a sync tool's copy: kept
    "hits-pixel-2026-13-01.csv",      # not a date: kept
    "notes-2026-01-01.csv",
]


def test_prune_deletes_only_this_servers_files_older_than_n_days(tmp_path):
    """N=2 on 2026-03-10: files of 03-07 and before go, today's and the two days before stay."""
    for name in NAMES:
        (tmp_path / name).write_text("x")
    pruned = prune_old_hits(tmp_path, "pixel", 2, date(2026, 3, 10))
    assert pruned == ["hits-pixel-2026-03-07.csv", "hits-pixel.w2-2026-01-01.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(NAMES) - set(pruned))
    assert prune_old_hits(tmp_path, "pixel", 0, date(2026, 3, 10)) == []
    assert prune_old_hits(tmp_path, "pixel", 1, date(2030, 1, 1)) == [
        "hits-pixel-2026-03-08.csv", "hits-pixel-2026-03-10.csv"]


def test_a_folder_named_like_an_old_hits_file_is_left_and_the_rest_pruned(tmp_path, caplog):
    """One directory (or symlink) named like an old hits file stops nothing: it is skipped and
    named in the log, and the real old files around it are deleted."""
    (tmp_path / "hits-pixel-2026-01-01.csv").mkdir()
    (tmp_path / "hits-pixel-2026-01-02.csv").symlink_to(tmp_path / "elsewhere.csv")
    (tmp_path / "elsewhere.csv").write_text("x")
    for name in ("hits-pixel-2025-12-31.csv", "hits-pixel-2026-01-03.csv"):
        (tmp_path / name).write_text("x")
    with caplog.at_level("WARNING"):
        pruned = prune_old_hits(tmp_path, "pixel", 2, date(2026, 3, 10))
    assert pruned == ["hits-pixel-2025-12-31.csv", "hits-pixel-2026-01-03.csv"]
    assert (tmp_path / "hits-pixel-2026-01-01.csv").is_dir() and (tmp_path / "elsewhere.csv").exists()
    assert "hits-pixel-2026-01-01.csv is named like an old hits file but is not a regular file" in caplog.text


def test_serve_prunes_at_start_and_keeps_todays_file(home, tmp_path):
    """A server started with --retention-days deletes its old files before it serves, and says so."""
    hits_dir = tmp_path / "hits"
    hits_dir.mkdir()
    today = f"hits-vps1-{datetime.now(timezone.utc).date().isoformat()}.csv"
    for name in ("hits-vps1-2001-01-01.csv", "hits-vps1-2001-01-02.csv", "hits-other-2001-01-01.csv", today):
        (hits_dir / name).write_text("x")
    server = PixelServer(home, "--server-id", "vps1", "--retention-days", "30", hits_dir=hits_dir)
    try:
        assert sorted(p.name for p in hits_dir.glob("hits-*.csv")) == ["hits-other-2001-01-01.csv", today]
    finally:
        server.stop()
    assert "deleted 2 hits files older than 30 days" in server.log_path.read_text()


def test_a_negative_retention_is_refused(home):
    """--retention-days -1 is a usage mistake, reported with the server's exit code."""
    proc = run_cli("serve", "--port", "0", "--retention-days", "-1", home=home, check=False)
    assert proc.returncode == 50 and "--retention-days" in proc.stderr
