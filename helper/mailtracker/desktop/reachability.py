"""The pixel servers as this desktop last reached them: ``state/servers-seen.json``, and the
answer the Track button shows before Send. The one owner of that file.

Only the puller knows whether a server answers, and it lives in the leading daemon's memory.
The daemon hands each pull's outcome to ``Sightings``, which writes the file only when a
server's outcome changes (reachable, unreachable, failing; or the reason), never per poll:
a live pull polls every 40 s and a failing one retries within seconds. The native host reads
it (``server_seen``) and never pulls or waits on the way.

A home without a puller gets its hits from a sync tool (Syncthing, rsync): nothing here knows
whether that server answers, so the answer says only when the hits last arrived, never that
something is wrong.
"""

import json
import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Dict, Sequence
from urllib.parse import urlsplit

from mailtracker.core.files import read_versioned_json, write_file_atomically
from mailtracker.core.hints import hint_for
from mailtracker.core.paths import Home
from mailtracker.core.settings import Config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop.pull import FAILING, REACHABLE, UNREACHABLE, PullStatus

log = logging.getLogger(__name__)

VERSION = 1
FILE_NAME = "servers-seen.json"
# What a server's state can be in the host's answer beyond REACHABLE, UNREACHABLE, FAILING:
# nobody has pulled from it yet (no daemon ran since it was configured).
UNKNOWN = "unknown"
# The order in which several servers' states are told: the worst first.
_WORST_FIRST = (UNREACHABLE, FAILING, UNKNOWN, REACHABLE)
# Bounds on what the file holds for one server (a message is a sentence, a reason a few words).
MAX_MESSAGE = 500
MAX_REASON = 80


def seen_path(home: Home) -> Path:
    return home.state_dir / FILE_NAME


@dataclass(frozen=True)
class Sighting:
    """How one server answered the last pull, since when, and when it last answered."""

    outcome: str  # REACHABLE, UNREACHABLE or FAILING
    since: str  # UTC time of the first pull with this outcome
    reason: str = ""  # why it did not answer, in a few words ("connection refused")
    message: str = ""  # the failure's sentence ('' when reachable)
    code: int = 0  # the failure's error code (its hint is hint_for(code))
    last_reached: str = ""  # the last time it answered, as far as this desktop knows

    def same_outcome(self, other: "Sighting") -> bool:
        return (self.outcome, self.reason, self.message, self.code) == \
            (other.outcome, other.reason, other.message, other.code)


def read_sightings(home: Home) -> Dict[str, Sighting]:
    """Each server's last sighting, by pull URL; {} when none was written (or it is unreadable)."""
    doc = read_versioned_json(seen_path(home), VERSION, "the servers are shown as not seen yet")
    servers = doc.get("servers") if doc is not None else None
    sightings = {}
    for url, fields in servers.items() if isinstance(servers, dict) else ():
        try:
            sighting = Sighting(**fields)
        except TypeError:  # written by another version, or by hand
            continue
        if sighting.outcome in (REACHABLE, UNREACHABLE, FAILING):
            sightings[url] = sighting
    return sightings


class Sightings:
    """Kept by the leading daemon: ``record`` takes each pull's status and writes the file
    when a server's outcome changed (and only then)."""

    def __init__(self, home: Home, servers: Sequence[str]):
        self.home = home
        known = read_sightings(home)
        # Servers no longer in config.toml are dropped at the first write.
        urls = [url.rstrip("/") for url in servers]
        self._servers = {url: known[url] for url in urls if url in known}
        self.writes = 0

    def record(self, status: PullStatus) -> bool:
        """Note one pull's outcome; True when it changed something, and so was written."""
        if status.reach not in (REACHABLE, UNREACHABLE, FAILING) or not status.server:
            return False
        now = utc_timestamp()
        failed = status.reach != REACHABLE
        sighting = Sighting(outcome=status.reach, since=now, reason=status.reason[:MAX_REASON],
                            message=status.message[:MAX_MESSAGE] if failed else "",
                            code=status.code if failed else 0,
                            last_reached=status.last_success if failed else now)
        before = self._servers.get(status.server)
        if before is not None and before.same_outcome(sighting):
            return False
        if before is not None and before.outcome == sighting.outcome:
            # Still not answering, for another reason: since when stays the first failure's.
            sighting = replace(sighting, since=before.since)
        self._servers[status.server] = sighting
        self._write()
        return True

    def _write(self) -> None:
        doc = {"version": VERSION, "servers": {url: asdict(s) for url, s in self._servers.items()}}
        try:
            write_file_atomically(seen_path(self.home), json.dumps(doc, indent=1).encode("utf-8"),
                                  mode=0o600, replace_existing=True)
            self.writes += 1
        except OSError as exc:  # pulling matters more than telling about it
            log.warning("cannot record how the pixel server answered in %s: %s", seen_path(self.home), exc)


def server_seen(home: Home, config: Config) -> dict:
    """What the host answers (``config``'s ``server_seen``): how the pixel server answered when
    last seen, worst server first, with the hint for its failure; for a home whose hits come
    by a sync tool, when its hits last arrived."""
    if not config.pull_urls:
        return {"how": "sync", "state": UNKNOWN, "hits_changed": _hits_changed(home.hits_dir(config))}
    sightings = read_sightings(home)
    servers = []
    for url in config.pull_urls:
        url = url.rstrip("/")
        sighting = sightings.get(url)
        host = urlsplit(url).netloc or url
        if sighting is None:
            servers.append({"server": host, "state": UNKNOWN})
            continue
        answer = {"server": host, "state": sighting.outcome, "since": sighting.since,
                  "last_reached": sighting.last_reached}
        if sighting.outcome != REACHABLE:
            answer.update(reason=sighting.reason, message=sighting.message, code=sighting.code,
                          hint=hint_for(sighting.code))
        servers.append(answer)
    servers.sort(key=lambda server: _WORST_FIRST.index(server["state"]))
    return {"how": "pull", **servers[0], "servers": servers}


def _hits_changed(hits_dir: Path) -> str:
    """When a hits file in the folder last changed (UTC), or '' when there is none."""
    from mailtracker.desktop.fold import hits_files

    latest = 0.0
    for path in hits_files(hits_dir)[0]:
        try:
            latest = max(latest, os.stat(path).st_mtime)
        except OSError:
            continue
    return utc_timestamp(latest) if latest else ""
