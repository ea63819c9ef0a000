"""Deleting a server's own hits files once they are older than its retention period.
"""

import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import List


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
    for name in sorted(os.listdir(hits_dir)):
        match = own.fullmatch(name)
        if not match:
            continue
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            continue
        if day < oldest_kept:
            try:
                os.unlink(hits_dir / name)
            except FileNotFoundError:
                continue
            pruned.append(name)
    return pruned

