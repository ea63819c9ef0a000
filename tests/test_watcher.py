"""The watcher: a real watchdog observer keeps register.csv current by itself."""

import os
import shutil
import threading

import pytest

from mailtracker.core.settings import load_config
from mailtracker.desktop.register import read_register
from mailtracker.desktop.tags import mint_tag
from mailtracker.desktop.watcher import Watcher
from tests.conftest import wait_for, write_hits


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


def test_start_runs_the_threads_and_stop_ends_every_one(setup):
    """start() runs an observer and a fold thread (which folds what arrived meanwhile);
    after stop() none is left (the autouse check enforces it too)."""
    home, config, _, _ = setup
    recorder = FoldRecorder()
    before = set(threading.enumerate())
    watcher = Watcher(home, config, on_fold=recorder).start()
    try:
        started = [t for t in threading.enumerate() if t not in before]
        assert any(t.name == "mailtracker-fold" for t in started) and len(started) >= 2, started
        recorder.wait(lambda r: len(r) >= 1)  # the first fold, without any file event
    finally:
        watcher.stop()
    assert not any(t.is_alive() for t in started)


def test_a_fold_that_keeps_failing_is_said_and_retried_until_it_works(setup):
    """A fold that keeps failing (a read model it cannot write): the watcher lives on, leaves the
    problem where doctor, the tray and the add-on read it, in words, retries with a delay, and
    clears it once a fold works again."""
    from mailtracker.desktop.install import read_fold_problem

    home, config, tag, hits_dir = setup
    view = home.state_dir / "view.sqlite3"
    view.parent.mkdir(parents=True, exist_ok=True)
    view.mkdir()  # SQLite cannot open a folder: every fold fails
    recorder = FoldRecorder()
    with Watcher(home, config, on_fold=recorder, retry_s=0.05) as watcher:
        wait_for(lambda: read_fold_problem(home) is not None, timeout=5, what="the problem recorded")
        assert "cannot write the read model" in read_fold_problem(home)["error"] and watcher.last_error
        wait_for(lambda: watcher.failures >= 2, timeout=5, what="a retry without any file event")
        view.rmdir()
        wait_for(lambda: read_fold_problem(home) is None, timeout=10, what="the problem cleared")
        recorder.wait(lambda r: len(r) >= 1)
    assert watcher.last_error == "" and _opens(home) == {"Ann": 0}


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
