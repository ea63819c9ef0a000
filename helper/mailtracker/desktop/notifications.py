"""Desktop notifications when a person opens a tracked email.

The rules (``Notifier``) are pure: they compare the person opens the fold
counted with the opens already told (kept in the marks), so machine and self
hits never notify, a re-fold of the same hits changes nothing, and another
process folding first (the native host does) still notifies. Re-opens of an
email within a cooldown stay quiet, and notifications are at least a gap apart:
opens arriving in between go out together, as one.

Delivery is per platform, from one table: the freedesktop notification service
over D-Bus on Linux, ``osascript`` on macOS (pystray's macOS backend has no
notifications), the tray icon's notification on Windows (pystray's win32 backend).
The platform is a ``Platform`` the caller may hand in, so the tests run each branch.
"""

import logging
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from mailtracker.core.timestamps import clock_time, parse_timestamp
from mailtracker.core.errors import NotificationUnavailable
from mailtracker.desktop.marks import Marks
from mailtracker.desktop.platforms import Platform
from mailtracker.desktop.register import Row, display_name

log = logging.getLogger(__name__)

APP_NAME = "mailtracker"
# Re-opens of one email within this time are one notification (a reader scrolling,
# a client fetching twice); the badge and the menu still count them.
COOLDOWN_S = 15 * 60.0
# Notifications are at least this far apart; what arrives in between is grouped.
GAP_S = 20.0
# A tag that first shows up already opened, its latest open older than this, is history
# arriving from another of the person's computers (one paired late, or back online): its
# opens are taken as told there, not announced here as new.
CATCH_UP_S = 60 * 60.0
GROUP_LINES = 4


@dataclass(frozen=True)
class Notice:
    """One notification to show."""

    title: str
    body: str
    tag_ids: Tuple[str, ...]


class Notifier:
    """Decides which new person opens become a notification, and when."""

    def __init__(self, marks: Marks, cooldown_s: float = COOLDOWN_S, gap_s: float = GAP_S):
        self.marks = marks
        self.cooldown_s = cooldown_s
        self.catch_up_s = CATCH_UP_S
        self.gap_s = gap_s
        self.pending: Dict[str, Row] = {}
        # The pending tags whose news is a click (told as "clicked", not "opened").
        self._clicked: Set[str] = set()
        self._told_at: Dict[str, float] = {}
        self._last_notice_at: Optional[float] = None

    def observe(self, rows: Sequence[Row], now: float, wall: Optional[float] = None) -> bool:
        """Take in the register rows after a fold; True when the marks changed. ``now`` is
        the monotonic clock of the cooldown and gap; ``wall`` the time of day (default now)."""
        wall = time.time() if wall is None else wall
        if not self.marks.baselined:
            self.marks.baseline(rows)
            return True
        changed = False
        notified = self.marks.notified
        clicks_told = self.marks.clicks_notified
        for row in rows:
            tag_id, opens, clicks = row.id, row.opens, row.clicks
            first_sight = tag_id not in notified
            told, told_clicks = notified.get(tag_id, 0), clicks_told.get(tag_id, 0)
            if opens == told and clicks == told_clicks and not first_sight:
                continue
            notified[tag_id], clicks_told[tag_id] = opens, clicks
            changed = True
            if (opens <= told and clicks <= told_clicks) or self.marks.paused:
                continue  # fewer after a rebuild under new rules; or paused: count, stay quiet
            if first_sight and _latest(row) < wall - self.catch_up_s:
                continue  # another computer's history, arriving late
            if tag_id in self.pending or now - self._told_at.get(tag_id, float("-inf")) >= self.cooldown_s:
                self.pending[tag_id] = row
                if clicks > told_clicks:
                    self._clicked.add(tag_id)
                else:
                    self._clicked.discard(tag_id)
        return changed

    def due_at(self) -> Optional[float]:
        """When the pending notice may go out, or None when nothing is pending."""
        if not self.pending:
            return None
        if self._last_notice_at is None:
            return float("-inf")
        return self._last_notice_at + self.gap_s

    def take(self, now: float) -> Optional[Notice]:
        """The notice that is due now, if any; it counts as told."""
        due = self.due_at()
        if due is None or now < due:
            return None
        rows = sorted(self.pending.values(), key=lambda row: max(row.last_open, row.last_click), reverse=True)
        clicked = len(rows) == 1 and rows[0].id in self._clicked
        self.drop_pending()
        self._last_notice_at = now
        for row in rows:
            self._told_at[row.id] = now
        return describe_opens(rows, clicked)

    def drop_pending(self) -> None:
        """Forget what waits (tracking was paused meanwhile)."""
        self.pending.clear()
        self._clicked.clear()


def _latest(row: Row) -> float:
    """When the tag's latest open or click was, in epoch seconds (-inf: never)."""
    stamps = [stamp for stamp in (row.last_open, row.last_click) if stamp]
    try:
        return max(parse_timestamp(stamp) for stamp in stamps) if stamps else float("-inf")
    except ValueError:
        return float("inf")  # an odd stamp: better told than lost


def describe_opens(rows: Sequence[Row], clicked: bool = False) -> Notice:
    """The notice for these rows' news; ``clicked``: one row's news is a click."""
    ids = tuple(row.id for row in rows)
    if len(rows) == 1 and clicked:
        row = rows[0]
        latest = max(row.links, key=lambda link: link.last_click, default=None)
        link = f"“{latest.text or latest.target}”" if latest is not None and latest.target else "a link"
        return Notice(title=f"{display_name(row)} clicked {link}",
                      body=f"In “{row.subject or '(no subject)'}”, at {_local_time(row.last_click)}.",
                      tag_ids=ids)
    if len(rows) == 1:
        row = rows[0]
        opens = row.opens
        when = _local_time(row.last_open)
        body = f"First open at {when}." if opens == 1 else f"Opened {opens} times; last at {when}."
        return Notice(title=f"{display_name(row)} opened “{row.subject or '(no subject)'}”", body=body,
                      tag_ids=ids)
    lines = [f"{display_name(row)}: {row.subject or '(no subject)'}" for row in rows[:GROUP_LINES]]
    if len(rows) > GROUP_LINES:
        lines.append(f"and {len(rows) - GROUP_LINES} more")
    return Notice(title=f"{len(rows)} tracked emails opened", body="\n".join(lines), tag_ids=ids)


def _local_time(stamp: str) -> str:
    """'14:02' today, '5 Dec 14:02' for an open of another day (a computer back online brings it late)."""
    return clock_time(stamp, time.time()) if stamp else "an unknown time"


class Notifications:
    """Owns the thread that delivers the notifier's notices when they are due."""

    def __init__(self, notifier: Notifier, deliver: Callable[[Notice], None]):
        self.notifier = notifier
        self.deliver = deliver
        self._changed = threading.Condition()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "Notifications":
        self._thread = threading.Thread(target=self._run, name="mailtracker-notify", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()

    def observe(self, rows: Sequence[Row]) -> bool:
        """Hand the notifier a fold's rows; True when the marks changed."""
        with self._changed:
            changed = self.notifier.observe(rows, time.monotonic())
            self._changed.notify_all()
            return changed

    def drop_pending(self) -> None:
        with self._changed:
            self.notifier.drop_pending()

    def tell(self, notice: Notice) -> None:
        """Show a notice now, outside the opens' rules (the tray's word that opens stop arriving)."""
        self._show(notice)

    def _show(self, notice: Notice) -> None:
        log.info("notifying: %s: %s", notice.title, notice.body.replace("\n", "; "))
        try:
            self.deliver(notice)
        except NotificationUnavailable as exc:
            log.warning("%s", exc)

    def _run(self) -> None:
        while True:
            with self._changed:
                notice = None
                while not self._stopping and notice is None:
                    now = time.monotonic()
                    due = self.notifier.due_at()
                    if due is not None and due <= now:
                        notice = self.notifier.take(now)
                    else:
                        self._changed.wait(None if due is None else due - now)
                if self._stopping:
                    return
            self._show(notice)


class Delivery:
    """Shows notices on this platform; says once, in the log, when it cannot."""

    def __init__(self, platform: Optional[Platform] = None, icon=None):
        self.platform = platform or Platform.current()
        self.icon = icon
        self._complained = False

    def __call__(self, notice: Notice) -> None:
        show = DELIVERY.get(self.platform.key)
        try:
            if show is None:
                raise NotificationUnavailable(f"no desktop notifications on {self.platform.key}")
            show(self, notice)
        except NotificationUnavailable as exc:
            if self._complained:
                log.debug("%s", exc)
                return
            self._complained = True
            raise NotificationUnavailable(f"{exc}; opens are still counted, shown in the tray "
                                          "and written to the log") from None

    def freedesktop(self, notice: Notice) -> None:
        """The freedesktop notification service, on the session D-Bus."""
        try:
            from jeepney import DBusAddress, MessageType, new_method_call
            from jeepney.io.blocking import open_dbus_connection
        except ImportError:
            raise NotificationUnavailable(
                "notifications need jeepney: pip install 'mailtracker[desktop]'") from None
        address = DBusAddress("/org/freedesktop/Notifications", bus_name="org.freedesktop.Notifications",
                              interface="org.freedesktop.Notifications")
        message = new_method_call(address, "Notify", "susssasa{sv}i", (
            APP_NAME, 0, "mail-read", notice.title, notice.body, [],
            {"category": ("s", "email.arrived"), "desktop-entry": ("s", APP_NAME)}, -1))
        try:
            with open_dbus_connection(bus="SESSION") as connection:
                reply = connection.send_and_get_reply(message, timeout=5)
        except KeyError:
            raise NotificationUnavailable(
                "no desktop notifications: $DBUS_SESSION_BUS_ADDRESS is not set (no desktop session)"
            ) from None
        except (OSError, TimeoutError) as exc:
            raise NotificationUnavailable(f"no desktop notifications: the session D-Bus: {exc}") from None
        if reply.header.message_type is MessageType.error:
            raise NotificationUnavailable(
                f"no desktop notifications: the notification service answered {reply.body or reply.header}")

    def osascript(self, notice: Notice) -> None:
        """macOS's own notification centre, through AppleScript (shown as from Script Editor)."""
        self.platform_run(osascript_command(notice))

    def platform_run(self, command: Sequence[str]) -> None:
        try:
            self.platform.run(list(command), check=True, capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as exc:
            raise NotificationUnavailable(f"no desktop notifications: {command[0]}: {exc}") from None

    def tray_balloon(self, notice: Notice) -> None:
        """pystray's own notification (a toast on Windows 10 and later), from the tray icon."""
        if self.icon is None or not getattr(self.icon, "HAS_NOTIFICATION", False):
            raise NotificationUnavailable("no desktop notifications without the tray icon")
        self.icon.notify(notice.body, notice.title)


# How each platform shows a notification.
DELIVERY: Dict[str, Callable[[Delivery, Notice], None]] = {
    "linux": Delivery.freedesktop,
    "darwin": Delivery.osascript,
    "win32": Delivery.tray_balloon,
}


def osascript_command(notice: Notice) -> List[str]:
    """The osascript call that shows ``notice``: the texts go in as arguments, never into the
    script's source, so no quote or backslash in a subject can break or change it. The first
    argument is the app's name: osascript's option parsing stops there, so a text that starts
    with "-" is still a text."""
    return ["osascript",
            "-e", "on run argv",
            "-e", "display notification (item 3 of argv) with title (item 2 of argv)",
            "-e", "end run",
            APP_NAME, notice.title, notice.body]
