"""The watcher: folds the logs whenever one changes, one fold per burst of events.

watchdog reports appends as *modified* and a sync tool's temp-file-and-rename
as *moved* (its destination is the log); both wake the fold. A register that
could not be written is retried on a timer until it can, and so is a fold that
failed, whatever the reason: the watcher says so and tries again, with a growing
delay, rather than going quiet.
"""

import fnmatch
import json
import logging
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from mailtracker.core.errors import MailtrackerError
from mailtracker.core.files import write_file_atomically
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.core.hitline import HITS_GLOB
from mailtracker.core.paths import DEVICES_DIR, DeviceLog, Home
from mailtracker.core.settings import Config
from mailtracker.desktop.fold import FoldResult, fold

log = logging.getLogger(__name__)

# The longest wait between two tries of a fold that keeps failing.
MAX_RETRY_S = 300.0


class _LogChanged(FileSystemEventHandler):
    def __init__(self, wake: threading.Event, tags_name: str):
        self._wake = wake
        self._tags_name = tags_name

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory and event.event_type in ("created", "moved") and \
                Path(event.dest_path if event.event_type == "moved" else event.src_path).name == DEVICES_DIR:
            self._wake.set()  # the home joined several computers: the fold thread watches the folder
            return
        if event.is_directory or event.event_type not in ("created", "modified", "moved", "closed"):
            return
        path = event.dest_path if event.event_type == "moved" else event.src_path
        name = Path(path).name
        if name == self._tags_name or fnmatch.fnmatch(name, HITS_GLOB) or DeviceLog.parse(name):
            self._wake.set()


class Watcher:
    """Owns a watchdog observer and a fold thread; ``start`` / ``stop`` (or ``with``)."""

    def __init__(self, home: Home, config: Config,
                 on_fold: Optional[Callable[[FoldResult], None]] = None,
                 debounce_s: float = 0.1, max_delay_s: float = 1.0, retry_s: float = 5.0):
        self.home = home
        self.config = config
        self.on_fold = on_fold
        self.debounce_s = debounce_s
        self.max_delay_s = max_delay_s
        self.retry_s = retry_s
        self.last_result: Optional[FoldResult] = None
        self.last_error = ""
        self.failures = 0
        self._failing_since = ""
        self._wake = threading.Event()
        self._stopping = False
        self._observer: Optional[Observer] = None
        self._handler: Optional[_LogChanged] = None
        self._devices_watched = False
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "Watcher":
        hits_dir = self.home.hits_dir(self.config)
        hits_dir.mkdir(parents=True, exist_ok=True)
        handler = _LogChanged(self._wake, self.home.legacy_log_path("tags").name)
        self._observer = Observer()
        self._observer.schedule(handler, str(hits_dir), recursive=False)
        if hits_dir.resolve() != self.home.data_dir.resolve():
            self._observer.schedule(handler, str(self.home.data_dir), recursive=False)
        self._handler = handler
        self._watch_devices()
        self._observer.start()
        self._thread = threading.Thread(target=self._run, name="mailtracker-fold", daemon=True)
        self._thread.start()
        self._wake.set()  # fold what arrived while nobody watched
        return self

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        try:
            if self._observer is not None:
                self._observer.stop()
                self._observer.join()
        finally:
            if self._thread is not None:
                self._thread.join()

    def __enter__(self) -> "Watcher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fold_now(self) -> None:
        """Ask for a fold soon (e.g. from a menu or after a pull)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            retry = self.failures or (self.last_result is not None and bool(self.last_result.register_error))
            delay = min(MAX_RETRY_S, self.retry_s * 2 ** max(0, self.failures - 1)) if retry else None
            if not self._wake.wait(delay) and not retry:
                continue
            self._settle()
            if self._stopping:
                return
            self._fold_once()

    def _tell_problem(self) -> None:
        """Leave the failure where doctor, the tray and the add-on look ('' clears it)."""
        path = self.home.fold_problem_path
        try:
            if self.last_error:
                write_file_atomically(path, json.dumps({
                    "since": self._failing_since, "failures": self.failures, "error": self.last_error,
                }).encode("utf-8"), mode=0o600, replace_existing=True)
            elif path.exists():
                path.unlink()
        except OSError as exc:  # the folding matters more than telling about it
            log.warning("cannot record the fold problem in %s: %s", path, exc)

    def _settle(self) -> None:
        """Wait until the burst of events is over (bounded), so one fold covers it."""
        deadline = time.monotonic() + self.max_delay_s
        while not self._stopping:
            self._wake.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._wake.wait(min(self.debounce_s, remaining)):
                return

    def _watch_devices(self) -> None:
        """Watch the devices folder, where the person's other computers' logs arrive, once it is
        there (made by 'devices join', which may come while this watcher runs). From the fold
        thread: watchdog's own thread holds its lock while it hands out events."""
        if not self._devices_watched and self.home.devices_dir.is_dir():
            self._observer.schedule(self._handler, str(self.home.devices_dir), recursive=False)
            self._devices_watched = True

    def _fold_once(self) -> None:
        self._watch_devices()
        try:
            result = fold(self.home, self.config)
        except Exception as exc:
            self.failures += 1
            if self.failures == 1:
                self._failing_since = utc_timestamp()
            if isinstance(exc, MailtrackerError):
                self.last_error = str(exc)
            elif isinstance(exc, OSError):
                self.last_error = f"folding failed: {exc.strerror or exc}"
            else:  # a bug: the traceback is for the log, the words for the user
                log.exception("folding failed unexpectedly")
                self.last_error = f"folding failed unexpectedly ({exc!r}); the log has the details"
            log.error("%s; trying again in %.0f s (failure %d)", self.last_error,
                      min(MAX_RETRY_S, self.retry_s * 2 ** (self.failures - 1)), self.failures)
            self._tell_problem()
            return
        if self.failures:
            log.info("folding works again after %d failures", self.failures)
        self.failures, self.last_error = 0, ""
        self._tell_problem()
        self.last_result = result
        if result.register_error:
            log.warning("%s", result.register_error)
        elif result.new_hits or result.new_tags:
            log.info("folded %s", result.summary())
        if self.on_fold is not None:
            try:
                self.on_fold(result)
            except Exception:  # the owner's view failed; the folding goes on
                log.exception("showing the new counts failed")
