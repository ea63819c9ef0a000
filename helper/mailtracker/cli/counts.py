"""Commands that keep and show the counts: ``fold``, ``rebuild``, ``watch``, ``list``, ``show``, ``report``."""

import json
import signal
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from mailtracker.cli.output import clip, describe_reminder, describe_sending, describe_time, opens_cell, printable
from mailtracker.cli.registry import argument, command
from mailtracker.core.errors import RegisterLockedError
from mailtracker.core.paths import Home
from mailtracker.core.settings import load_config


@command("fold", help="fold new hits into register.csv once",
         description="Read what is new in tags.csv and hits-*.csv and update register.csv; prints "
         "what it folded.")
def cmd_fold(args, home: Home) -> int:
    from mailtracker.desktop.fold import fold

    result = fold(home)
    print(f"Folded {result.summary()}")
    if result.register_error:
        print(f"mailtracker: {result.register_error}", file=sys.stderr)
        return RegisterLockedError.code
    return 0


@command("watch", help="fold whenever a log changes (foreground)",
         description="Watch the hits folder and tags.csv and keep register.csv up to date until "
         "interrupted.")
def cmd_watch(args, home: Home) -> int:
    from mailtracker.desktop.daemon import Daemon

    config = load_config(home)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Daemon(home, config) as daemon:
        if not daemon.leading.is_set():
            print("Another mailtracker process (the tray, another 'watch', or Thunderbird's helper) "
                  "keeps the counts current; this one takes over when it stops.", flush=True)
        print(f"Watching {home.hits_dir(config)}; register at {home.register_path}. "
              "Ctrl-C stops.", flush=True)
        if config.pull_urls:
            how = (f"live (each hit within a second or two; every {config.pull_interval_s:g} s from a "
                   "server too old to hold requests)" if config.pull_live else
                   f"every {config.pull_interval_s:g} s (pull_live = false)")
            print(f"Pulling hits from {', '.join(config.pull_urls)} {how}.", flush=True)
        try:
            while not stop.wait(3600):
                pass
        except KeyboardInterrupt:
            pass
    return 0


@command("rebuild", help="regenerate register.csv from the logs alone",
         description="Forget all fold state and count every log again.")
def cmd_rebuild(args, home: Home) -> int:
    from mailtracker.desktop.fold import fold

    result = fold(home, rebuild=True, progress=True)
    if result.register_error:
        print(f"Counted the logs again ({result.summary()}), but register.csv was not written.")
        print(f"mailtracker: {result.register_error}", file=sys.stderr)
        return RegisterLockedError.code
    print(f"Rebuilt register.csv: {result.summary()}")
    return 0


def read_register(home: Home):
    """The read model, with a word on stderr when nobody keeps it current."""
    from mailtracker.desktop.daemon import daemon_running
    from mailtracker.desktop.register import Register

    load_config(home)  # an uninitialised home says so, rather than showing nothing
    if not daemon_running(home):
        print("mailtracker: no daemon is folding ('mailtracker tray', 'watch', or Thunderbird's "
              "helper): these are the counts of the last fold; 'mailtracker fold' updates them",
              file=sys.stderr)
    return Register.load(home)


@command("list", help="show tags with their opens (the old -dump)",
         description="Show every tag with short id, opens and last open, as the last fold counted "
         "them (a running tray or watch keeps that current).",
         arguments=[argument("--json", action="store_true", help="print the register rows as JSON")])
def cmd_list(args, home: Home) -> int:
    with read_register(home) as register:
        rows = register.rows()
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2))
        return 0
    if not rows:
        print("No tags yet: mint one with 'mailtracker tag --name NAME'.")
        return 0
    print(format_table(rows))
    return 0


def format_table(rows, now: Optional[datetime] = None) -> str:
    """One line per tag; the copies of a mail sent individually stand together, under
    their group's first 8 characters in the GROUP column."""
    from mailtracker.desktop.register import grouped

    now = now or datetime.now(timezone.utc)
    header = ("ID", "NAME", "SUBJECT", "SENT", "OPENS", "CLICKS", "REPLIES", "LAST OPEN", "REMINDER",
              "NOT COUNTED", "GROUP")
    lines = [header]
    for row in (row for members in grouped(rows) for row in members):
        ignored = []
        if row.machine_hits:
            ignored.append(f"{row.machine_hits} machine")
        if row.self_hits:
            ignored.append(f"{row.self_hits} yours")
        lines.append((row.short_id, clip(row.name or row.recipients, 24),
                      clip(row.subject, 32), describe_sending(row), opens_cell(row), str(row.clicks),
                      "not delivered" if row.undelivered else str(row.replies),
                      describe_time(row.last_open, now), describe_reminder(row, now),
                      ", ".join(ignored), printable(row.group[:8])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in lines)


@command("show", help="one tag's hits with labels and reasons",
         description="Show one tag (by short id, id or Message-ID): its opens, and each recent hit "
         "with its label, client and reason.",
         arguments=[argument("tag", help="short id (7 characters), full id, or Message-ID")])
def cmd_show(args, home: Home) -> int:
    from mailtracker.core.errors import UnknownTagError
    from mailtracker.desktop.classify import explain
    from mailtracker.desktop.elsewhere import HINT as ELSEWHERE_HINT

    with read_register(home) as register:
        row = register.find(args.tag)
        if row is None:
            raise UnknownTagError(f"no tag matches {args.tag!r} (a short id, full id or Message-ID)")
        timeline = register.timeline(row.id)
        members = register.group(row.group)
    print(printable(f"{row.short_id}  {row.name or row.recipients}  {row.subject}"))
    print("not sent" if row.sending[1] == "unsent" else f"sent: {describe_sending(row)}")
    if members:
        opened = sum(1 for member in members if member.opened)
        print(printable(f"sent individually (group {row.group[:8]}): {len(members)} recipients, "
                        f"{opened} opened"))
        for member in members:
            mark = "*" if member.id == row.id else " "
            print(printable(f" {mark}{member.short_id}  {clip(member.recipients, 32):<32} "
                            f"{member.opens} opens, {member.clicks} clicks, "
                            f"last open {member.last_open or '-'}"))
    print(f"{row.opens} opens (first {row.first_open or '-'}, last {row.last_open or '-'}); "
          f"{row.machine_hits} machine hits and {row.self_hits} of your own, not counted")
    if row.not_seen:
        print(printable(f"{row.not_seen_words}: {row.not_seen_reason}"))
    if row.replies:
        print(printable(f"{row.replies} replies from {row.replied_by or '-'} "
                        f"(first {row.first_reply or '-'}, last {row.last_reply or '-'}): read"))
    if row.undelivered:
        print(printable(f"not delivered to {row.undelivered}: {row.undelivered_reason or '-'}"))
    if row.remind_at:
        print(f"reminder: {describe_reminder(row, datetime.now(timezone.utc))}")
    if row.links:
        print(f"{row.clicks} clicks (first {row.first_click or '-'}, "
              f"last {row.last_click or '-'}) on {len(row.links)} tracked links:")
        for link in row.links:
            text = f"'{clip(link.text, 32)}' " if link.text else ""
            last = f", last {link.last_click}" if link.last_click else ""
            print(f"  link {link.link}: {text}{clip(link.target, 60)} — "
                  f"{link.clicks} clicks{last}")
    for stamp, label, counted, reason, client in timeline:
        mark = "" if counted else " (not counted again)"
        if counted and label == "open" and row.opened_elsewhere_at(stamp):
            mark += f"; {ELSEWHERE_HINT}"
        print(printable(f"  {stamp}  {label:<8} {client:<32} {explain(reason)}{mark}"))
    return 0


@command("report", help="write the HTML report (timelines, opens per day)",
         description="Write a self-contained HTML report of the last fold's counts: an open timeline "
         "per email, opens per day, and a table with labels of the newest emails (every email is in "
         "register.csv).",
         arguments=[
             argument("--output", metavar="FILE", help="where to write it (default <home>/report.html)"),
             argument("--open", action="store_true", help="open it in the web browser"),
             argument("--all", action="store_true",
                      help="list every tracked email in the table, not only the newest 500 (a page of "
                      "tens of megabytes for tens of thousands of emails)"),
         ])
def cmd_report(args, home: Home) -> int:
    import webbrowser

    from mailtracker.desktop.report import TABLE_ROWS, write_report

    read_register(home).close()  # only for its word when no daemon keeps the counts current
    path = write_report(home, Path(args.output).resolve() if args.output else None,
                        table_rows=None if args.all else TABLE_ROWS)
    print(f"Wrote the report {path}")
    if args.open:
        webbrowser.open(path.as_uri())
    return 0
