"""Deleting a server's own hits files once they are older than its retention period.

Only regular files are deleted: anything else named like an old hits file (a folder,
a symlink, a FIFO) is left alone and named in the log, and one entry that cannot be
deleted never stops the others from being pruned.
"""

import logging
import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import List

log = logging.getLogger(__name__)


def prune_old_hits(hits_dir: Path, server_id: str, keep_days: int, today: date) -> List[str]:
    """Delete this server's hits files dated more than ``keep_days`` days before ``today``.

    Only files named for this server id (or one of its worker slots) are
    touched; today's file and the ``keep_days`` before it are always kept.
    """
    if keep_days < 1:
        return []
    own = re.compile(rf"hits-{re.escape(server_id)}(?:\.w\d+)?-(\d{{4}}-\d\d-\d\d)\.csv")
    oldest_kept = today - timedelta(days=keep_days)
    pruned = []
    with os.scandir(hits_dir) as entries:
        for entry in sorted(entries, key=lambda entry: entry.name):
            match = own.fullmatch(entry.name)
            if not match:
                continue
            try:
                day = date.fromisoformat(match.group(1))
            except ValueError:
                continue
            if day >= oldest_kept:
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    log.warning("%s is named like an old hits file but is not a regular file: "
                                "left alone", entry.path)
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.error("cannot delete the old hits file %s: %s", entry.path, exc.strerror or exc)
                continue
            pruned.append(entry.name)
    return pruned
