"""The watcher: a real watchdog observer keeps register.csv current by itself."""

import os
import shutil
import threading

import pytest

from mailtracker.core.settings import load_config
from mailtracker.desktop.register import read_register
from mailtracker.desktop.tags import mint_tag
from mailtracker.desktop.watcher import Watcher
from tests.test_fold import write_hits


class FoldRecorder:
    def __init__(self):
        self.results = []
        self.changed = threading.Condition()

    def __call__(self, result):
        with self.changed:
            self.results.append(result)
            self.changed.notify_all()

    def wait(self, predicate, timeout=5.0):
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self.results), timeout), self.results


def _opens(home):
    if not home.register_path.exists():
        return None
    return {row["name"]: int(row["opens"]) for row in read_register(home.register_path)}


@pytest.fixture
def setup(home):
    config = load_config(home)
    tag = mint_tag(home, config, name="Ann")
    return home, config, tag, home.hits_dir(config)


def test_an_append_updates_the_register_within_a_second(setup):
    """A hit appended to a log shows in register.csv without anyone running fold."""
    home, config, tag, hits_dir = setup
    recorder = FoldRecorder()
    with Watcher(home, config, on_fold=recorder):
        recorder.wait(lambda r: len(r) >= 1)
        write_hits(hits_dir / "hits-a-2026-11-24.csv", [(1, tag.id, "GET")])
        recorder.wait(lambda r: sum(x.new_opens for x in r) == 1, timeout=2.0)
    assert _opens(home) == {"Ann": 1}


def test_a_rename_replace_is_noticed(setup):
    """A sync tool's temp-file-and-rename (a watchdog moved event) triggers a fold."""
    home, config, tag, hits_dir = setup
    path = hits_dir / "hits-a-2026-11-24.csv"
    write_hits(path, [(1, tag.id, "GET")])
    recorder = FoldRecorder()
    with Watcher(home, config, on_fold=recorder):
        recorder.wait(lambda r: sum(x.new_opens for x in r) == 1)
        tmp = hits_dir / ".syncthing.hits-a-2026-11-24.csv.tmp"
        shutil.copy(path, tmp)
        write_hits(tmp, [(2, tag.id, "GET")])
        os.replace(tmp, path)
        recorder.wait(lambda r: sum(x.new_opens for x in r) == 2, timeout=2.0)
    assert _opens(home) == {"Ann": 2}


def test_a_burst_of_appends_is_folded_in_a_few_passes(setup):
    """200 appends in a burst cause a handful of folds, not 200."""
    home, config, tag, hits_dir = setup
    recorder = FoldRecorder()
    with Watcher(home, config, on_fold=recorder):
        recorder.wait(lambda r: len(r) >= 1)
        for seq in range(1, 201):
            write_hits(hits_dir / "hits-a-2026-11-24.csv", [(seq, tag.id, "GET")])
        recorder.wait(lambda r: sum(x.new_opens for x in r) == 200, timeout=5.0)
    assert len(recorder.results) <= 6


def test_a_new_tag_appears_in_the_register(setup):
    """Minting a tag while the watcher runs adds its row to register.csv."""
    home, config, _, _ = setup
    recorder = FoldRecorder()
    with Watcher(home, config, on_fold=recorder):
        recorder.wait(lambda r: len(r) >= 1)
        mint_tag(home, config, name="Bob")
        recorder.wait(lambda r: any(x.new_tags for x in r[1:]), timeout=2.0)
    assert set(_opens(home)) == {"Ann", "Bob"}


def test_stop_ends_every_thread(setup):
    """After stop(), no observer or fold thread is left (the autouse check enforces it)."""
    home, config, _, _ = setup
    watcher = Watcher(home, config).start()
    watcher.stop()
    assert not any(t.name == "mailtracker-fold" for t in threading.enumerate())


def test_a_fold_that_raises_anything_is_retried_with_backoff_and_the_watcher_lives(setup, monkeypatch, caplog):
    """A bug in the fold (any exception) is logged, made visible, retried with a growing delay; counting resumes."""
    import mailtracker.desktop.watcher as watcher_module

    home, config, tag, hits_dir = setup
    real_fold, calls = watcher_module.fold, []

    def flaky_fold(*args, **kwargs):
        calls.append(threading.get_ident())
        if len(calls) <= 3:
            raise KeyError("a bug, not an OSError nor one of ours")
        return real_fold(*args, **kwargs)

    monkeypatch.setattr(watcher_module, "fold", flaky_fold)
    recorder = FoldRecorder()
    write_hits(hits_dir / "hits-a-2026-11-24.csv", [(1, tag.id, "GET")])
    with caplog.at_level("INFO", logger="mailtracker.desktop.watcher"):
        with Watcher(home, config, on_fold=recorder, retry_s=0.05) as watcher:
            recorder.wait(lambda results: results and results[-1].new_opens == 1)
            assert watcher.failures == 0 and watcher.last_error == ""
            assert watcher._thread.is_alive()
    assert _opens(home) == {"Ann": 1}
    messages = [record.getMessage() for record in caplog.records]
    for failure in (1, 2, 3):
        assert any("folding failed unexpectedly (KeyError" in m and f"(failure {failure})" in m for m in messages)
    assert any("works again after 3 failures" in m for m in messages)
