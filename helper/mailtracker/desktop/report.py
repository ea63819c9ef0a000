"""The report: one self-contained HTML page a person would rather look at than
read a CSV, with an open timeline per email, opens per day, and a table.

Charts are inline SVG written here (no plotting library, no script, nothing
fetched): the page opens offline, from disk, in any browser. Times are shown
in the computer's local time zone. Everything comes from the read model, so
the numbers are the register's.
"""

import html
import math
import time
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from mailtracker.core.files import write_file_atomically
from mailtracker.core.paths import Home
from mailtracker.core.timestamps import parse_timestamp, utc_timestamp
from mailtracker.desktop.classify import PERSON_LABELS
from mailtracker.desktop.elsewhere import HINT as ELSEWHERE_HINT
from mailtracker.desktop.register import SENDING_NOTES, Register, Row, display_name, grouped

MAX_DAYS = 60
MIN_DAYS = 14
MAX_TIMELINE_ROWS = 40
# The table lists the newest emails (and every copy of an email sent individually among them):
# a busy sender's 50,000 made a page of 22 MB that took 10 s to write and longer to draw. Every
# email is in register.csv; ``report --all`` lists them all here too.
TABLE_ROWS = 500
# Colours per hit label; any label not listed is a machine's.
LABEL_COLOURS = {
    "open": "#2563eb",
    "proxy": "#7c3aed",
    "self": "#6b7280",
    "prefetch": "#d97706",
    "click": "#059669",
}
LABEL_MEANINGS = {
    "open": "a person's mail client",
    "proxy": "an image proxy fetching for a person (Gmail, Yahoo)",
    "self": "your own Thunderbird (not counted)",
    "prefetch": "a machine: privacy relay, scanner, HEAD request (not counted)",
    "click": "a person followed a link (also proof of an open)",
}
MACHINE_COLOUR = LABEL_COLOURS["prefetch"]
BAR_COLOUR = "#0d9488"
REPEAT_NOTE = "a repeat within the repeat window (shown, not counted again)"


@dataclass
class Hit:
    when: float
    label: str
    counted: bool
    # From a network and mail program no earlier open came from (``elsewhere``): a hint.
    elsewhere: bool = False

    @property
    def person(self) -> bool:
        return self.label in PERSON_LABELS


@dataclass
class Email:
    """A register row with the hits of its timeline (None until they are read: the report reads
    only those of the emails it shows, and of those opened in the days its chart draws)."""

    row: Row
    hits: Optional[List[Hit]] = None

    @property
    def created(self) -> float:
        return _moment(self.row.created)

    @property
    def sent(self) -> float:
        """When it went out (``Row.sending``: Thunderbird's send time, else the mint time); 0.0 if unknown."""
        return _moment(self.row.sending[0])

    @property
    def truncated(self) -> bool:
        return self.hits is not None and self.row.hits > len(self.hits)


def _moment(stamp: str) -> float:
    """Epoch seconds of a timestamp from the logs; 0.0 for none, or one no writer of ours made."""
    try:
        return parse_timestamp(stamp) if stamp else 0.0
    except ValueError:
        return 0.0


def report_path(home: Home) -> Path:
    return home.data_dir / "report.html"


def write_report(home: Home, path: Optional[Path] = None, now: Optional[float] = None,
                 table_rows: Optional[int] = TABLE_ROWS, picked: Sequence[str] = ()) -> Path:
    """Write the report from the read model (as the last fold left it); its table lists the
    ``table_rows`` newest emails (None: all) and the ``picked`` tags' (the tray opens the report
    at the row of an email opened lately, which may be an old one)."""
    path = path or report_path(home)
    with Register.load(home) as register:
        page = build_report(register, now, table_rows, picked)
    write_file_atomically(path, page.encode("utf-8"), mode=0o600, replace_existing=True)
    return path


def gather_emails(register: Register) -> List[Email]:
    """Every sent or pending tag (never the unsent), newest first, without their hits yet."""
    emails = [Email(row=row) for row in register.rows() if row.status != "unsent"]
    emails.sort(key=lambda email: (email.sent or email.created, email.row.id), reverse=True)
    return emails


def read_hits(register: Register, emails: Sequence[Email]) -> None:
    """Read the hits of these emails' timelines (those not read yet)."""
    unread = {email.row.id: email for email in emails if email.hits is None}
    found = register.timelines(unread)
    for tag_id, email in unread.items():
        email.hits = [_hit(item, email.row) for item in found.get(tag_id, ())]


def _hit(item: Sequence, row: Row) -> Hit:
    stamp, label, counted = item[:3]
    return Hit(when=parse_timestamp(stamp), label=label, counted=bool(counted),
               elsewhere=bool(counted) and label == "open" and row.opened_elsewhere_at(stamp))


def opens_per_day(emails: Sequence[Email]) -> Dict[date, int]:
    """People's counted opens by local day, in the hits read (``read_hits``)."""
    days: Dict[date, int] = {}
    for email in emails:
        for hit in email.hits or ():
            if hit.person and hit.counted:
                day = datetime.fromtimestamp(hit.when).date()
                days[day] = days.get(day, 0) + 1
    return days


def _opens_by_day(register: Register, emails: Sequence[Email], span: Tuple[date, date]) -> Tuple[Dict[date, int], int]:
    """People's counted opens by local day from the chart's first day to its last, and how many
    came before the first. An email last opened before that day adds every open its row counts to
    those; the others add their timeline's: the hits read, else the events' times as text, each
    placed among the days' starts written as a hit's time is (its text orders as its moment
    does; tens of thousands of emails' events, read without making each a moment)."""
    first, last = span
    count = (last - first).days + 1
    starts = [utc_timestamp(datetime.combine(first + timedelta(days=n), datetime.min.time()).timestamp())
              for n in range(count + 1)]
    recent = [email for email in emails if _opened_since(email, first)]
    earlier = sum(email.row.opens for email in emails if email.row.opens) - sum(email.row.opens for email in recent)
    days = {}
    for day, value in opens_per_day([email for email in recent if email.hits is not None]).items():
        if day < first:
            earlier += value
        elif day <= last:
            days[day] = value
    found = register.timelines(email.row.id for email in recent if email.hits is None)
    for events in found.values():
        for stamp, label, counted, *_ in events:
            if counted and label in PERSON_LABELS:
                at = bisect_right(starts, stamp)
                if at == 0:
                    earlier += 1
                elif at <= count:  # after the last day (a clock ahead): not drawn
                    day = first + timedelta(days=at - 1)
                    days[day] = days.get(day, 0) + 1
    return days, earlier


def build_report(register: Register, now: Optional[float] = None, table_rows: Optional[int] = TABLE_ROWS,
                 picked: Sequence[str] = ()) -> str:
    now = time.time() if now is None else now
    emails = gather_emails(register)
    listed = _listed(emails, table_rows, picked)
    read_hits(register, [*emails[:MAX_TIMELINE_ROWS], *listed])  # what the timelines and the table show
    span = _chart_span(emails, now)
    local_now = datetime.fromtimestamp(now).astimezone()
    zone = local_now.strftime("%Z (UTC%z)")
    opened = sum(1 for email in emails if email.row.opens)
    opens = sum(email.row.opens for email in emails)
    uncounted = sum(email.row.self_hits + email.row.machine_hits for email in emails)
    rate = f"{100 * opened / len(emails):.0f} %" if emails else "–"
    parts = [
        _HEAD,
        "<header><h1>mailtracker report</h1>",
        f"<p class=\"meta\">Made {_esc(local_now.strftime('%Y-%m-%d %H:%M'))}; times in {_esc(zone)}.</p>",
        "</header>",
        "<section class=\"tiles\">",
        _tile("tracked emails", len(emails), "tracked"),
        _tile(f"opened ({rate})", opened, "opened"),
        _tile("opens by people", opens, "opens"),
        _tile("not counted (you, machines)", uncounted, "uncounted"),
        "</section>",
        "<section><h2>Opens per day</h2>",
        _day_chart(emails, span, *(_opens_by_day(register, emails, span) if span else ({}, 0))),
        "</section>",
        "<section><h2>Open timeline per email</h2>",
        _timeline_chart(emails, now, len(listed)),
        _legend(),
        "</section>",
        f"<section><h2>{'All tracked emails' if len(listed) == len(emails) else 'The newest tracked emails'}</h2>",
        _table(listed),
        _listed_note(listed, emails, table_rows),
        "</section>",
        "</body></html>\n",
    ]
    return "\n".join(parts)


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mailtracker report</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #111827; background: #fff; margin: 24px auto; max-width: 980px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0; } h2 { font-size: 16px; margin: 28px 0 8px; }
.meta, .note { color: #6b7280; margin: 4px 0; }
.problem { color: #b3261e; }
.notseen { color: #6d6d6d; font-style: italic; }
.tiles { display: flex; gap: 12px; margin-top: 16px; }
.tile { flex: 1; border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 14px; }
.tile b { display: block; font-size: 26px; }
.tile span { color: #6b7280; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font: 11px system-ui, "DejaVu Sans", sans-serif; fill: #374151; }
svg .name { font-size: 12px; fill: #111827; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 8px 0; color: #374151; }
.legend i { display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 6px; }
.legend i.repeat { background: #fff !important; border: 1px solid #2563eb; width: 6px; height: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
th { color: #374151; font-weight: 600; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.t { white-space: nowrap; font-variant-numeric: tabular-nums; }
tr:target { background: #fef3c7; }
@media print { body { margin: 0; } }
</style></head><body>"""


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _tile(label: str, value: int, key: str) -> str:
    return f"<div class=\"tile\" data-key=\"{key}\"><b>{value}</b><span>{_esc(label)}</span></div>"


def _local(stamp: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(stamp).strftime(fmt)


def _nice_step(top: int, ticks: int = 4) -> int:
    raw = max(1, top) / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return max(1, int(factor * power))
    return max(1, int(10 * power))


def _local_day(stamp: str) -> date:
    return datetime.fromtimestamp(parse_timestamp(stamp)).date()


def _chart_span(emails: Sequence[Email], now: float) -> Optional[Tuple[date, date]]:
    """The first and last local day the opens-per-day chart draws: from the first open (by the
    rows, which count every open), at most MAX_DAYS and at least MIN_DAYS, to today; None
    without an open."""
    opened = [email.row.first_open for email in emails if email.row.opens and email.row.first_open]
    if not opened:
        return None
    last = datetime.fromtimestamp(now).date()
    first = min(max(_local_day(min(opened)), last - timedelta(days=MAX_DAYS - 1)), last - timedelta(days=MIN_DAYS - 1))
    return first, last


def _opened_since(email: Email, day: date) -> bool:
    """Whether the email's last open was on ``day`` or later (local time)."""
    return bool(email.row.opens and email.row.last_open) and _local_day(email.row.last_open) >= day


def _day_chart(emails: Sequence[Email], span: Optional[Tuple[date, date]], days: Dict[date, int],
               earlier: int) -> str:
    """The bars of ``days`` (``_opens_by_day``) over ``span``, and a word on the ``earlier`` opens."""
    if span is None:
        return "<p class=\"note\">No opens yet.</p>"
    first, last = span
    count = (last - first).days + 1
    width, height, left, right, top, bottom = 960, 220, 44, 8, 10, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(days.values(), default=1)
    step = _nice_step(peak)
    scale_top = step * math.ceil(peak / step)
    slot = plot_w / count
    bar_w = min(24.0, max(1.0, slot * 0.7))
    out = [f"<svg class=\"days\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" "
           "role=\"img\" aria-label=\"Opens per day\">"]
    for value in range(0, scale_top + 1, step):
        y = top + plot_h - plot_h * value / scale_top
        out.append(f"<line x1=\"{left}\" x2=\"{width - right}\" y1=\"{y:.1f}\" y2=\"{y:.1f}\" "
                   "stroke=\"#e5e7eb\"/>")
        out.append(f"<text x=\"{left - 6}\" y=\"{y + 4:.1f}\" text-anchor=\"end\">{value}</text>")
    label_every = max(1, math.ceil(count / 10))
    for i in range(count):
        day = first + timedelta(days=i)
        x = left + i * slot + (slot - bar_w) / 2
        value = days.get(day, 0)
        if value:
            bar_h = plot_h * value / scale_top
            out.append(
                f"<rect class=\"bar\" data-day=\"{day.isoformat()}\" data-opens=\"{value}\" "
                f"x=\"{x:.1f}\" y=\"{top + plot_h - bar_h:.1f}\" width=\"{bar_w:.1f}\" "
                f"height=\"{bar_h:.1f}\" fill=\"{BAR_COLOUR}\"><title>{day:%a %Y-%m-%d}: "
                f"{value} open{'s' if value != 1 else ''}</title></rect>")
        if i % label_every == 0 or i == count - 1:
            out.append(f"<text x=\"{x + bar_w / 2:.1f}\" y=\"{height - bottom + 16}\" "
                       f"text-anchor=\"middle\">{day:%b %d}</text>")
    out.append("</svg>")
    if earlier:
        out.append(f"<p class=\"note\">{earlier} earlier opens, before {first:%Y-%m-%d}, are not shown.</p>")
    if any(email.truncated for email in emails):
        out.append("<p class=\"note\">Emails with many hits keep only their latest hits in the "
                   "timeline; the table has their full counts.</p>")
    return "\n".join(out)


def _time_ticks(start: float, end: float, count: int = 6) -> List[Tuple[float, str]]:
    span = end - start
    fmt = "%H:%M" if span <= 86400 else "%b %d %H:%M" if span <= 4 * 86400 else "%b %d"
    return [(start + span * i / (count - 1), _local(start + span * i / (count - 1), fmt))
            for i in range(count)]


def _timeline_chart(emails: Sequence[Email], now: float, listed: int) -> str:
    """The newest emails' hits on one time axis; ``listed``: how many the table lists."""
    shown = list(emails[:MAX_TIMELINE_ROWS])
    if not shown:
        return "<p class=\"note\">No tracked emails yet: mint one with 'mailtracker tag' or send " \
               "one with Track on in Thunderbird.</p>"
    moments = [email.sent for email in shown if email.sent]
    moments += [hit.when for email in shown for hit in email.hits]
    start, end = min(moments + [now]), now
    if end - start < 3600:
        start = end - 3600
    start -= (end - start) * 0.02
    width, left, right, row_h, top = 960, 300, 16, 28, 8
    height = top + row_h * len(shown) + 30
    plot_w = width - left - right

    def x_of(moment: float) -> float:
        return left + plot_w * (moment - start) / (end - start)

    out = [f"<svg class=\"timeline\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" "
           f"height=\"{height}\" role=\"img\" aria-label=\"Open timeline per email\">"]
    ticks = _time_ticks(start, end)
    for index, (moment, label) in enumerate(ticks):
        x = x_of(moment)
        anchor = "start" if index == 0 else "end" if index == len(ticks) - 1 else "middle"
        out.append(f"<line x1=\"{x:.1f}\" x2=\"{x:.1f}\" y1=\"{top}\" y2=\"{height - 24}\" "
                   "stroke=\"#f3f4f6\"/>")
        out.append(f"<text x=\"{x:.1f}\" y=\"{height - 8}\" text-anchor=\"{anchor}\">{_esc(label)}</text>")
    for index, email in enumerate(shown):
        row = email.row
        y = top + row_h * index + row_h / 2
        if index % 2:
            out.append(f"<rect x=\"0\" y=\"{y - row_h / 2:.1f}\" width=\"{width}\" height=\"{row_h}\" "
                       "fill=\"#f9fafb\"/>")
        name = _clip(f"{display_name(row)} — {row.subject or '(no subject)'}", 44)
        out.append(f"<g class=\"email\" data-id=\"{_esc(row.short_id)}\" data-opens=\"{row.opens}\">")
        out.append(f"<text class=\"name\" x=\"4\" y=\"{y + 4:.1f}\">{_esc(name)}</text>")
        if email.sent:
            sent_x = x_of(email.sent)
            out.append(f"<line x1=\"{sent_x:.1f}\" x2=\"{x_of(end):.1f}\" y1=\"{y:.1f}\" y2=\"{y:.1f}\" "
                       "stroke=\"#d1d5db\"/>")
            out.append(f"<line x1=\"{sent_x:.1f}\" x2=\"{sent_x:.1f}\" y1=\"{y - 7:.1f}\" "
                       f"y2=\"{y + 7:.1f}\" stroke=\"#111827\" stroke-width=\"2\">"
                       f"<title>{_esc(_sent_words(email))}</title></line>")
        # Machines first, so a person's open is drawn on top of a fetch at the same time.
        for hit in sorted(email.hits, key=lambda hit: (hit.person, hit.when)):
            colour = LABEL_COLOURS.get(hit.label, MACHINE_COLOUR)
            what = hit.label if hit.counted else f"{hit.label}, a repeat: not counted again"
            if hit.elsewhere:
                what += f" — {ELSEWHERE_HINT}"
            radius, fill = (6, colour) if hit.person else (4, colour)
            stroke = ""
            if hit.person and not hit.counted:
                fill, stroke = "#ffffff", f" stroke=\"{colour}\" stroke-width=\"2\""
            kind = f"{hit.label} elsewhere" if hit.elsewhere else hit.label
            out.append(f"<circle class=\"hit {_esc(kind)}\" cx=\"{x_of(hit.when):.1f}\" "
                       f"cy=\"{y:.1f}\" r=\"{radius}\" fill=\"{fill}\"{stroke}>"
                       f"<title>{_local(hit.when)} · {_esc(what)}</title></circle>")
        out.append("</g>")
    out.append("</svg>")
    if len(emails) > len(shown):
        table = f"all {len(emails)} are in the table" if listed == len(emails) else \
            f"the table lists {listed} of {len(emails)}"
        out.append(f"<p class=\"note\">The {len(shown)} newest emails are drawn; {table}.</p>")
    return "\n".join(out)


def _legend() -> str:
    items = [f"<span><i style=\"background:{colour}\"></i>{_esc(label)}: {_esc(LABEL_MEANINGS[label])}</span>"
             for label, colour in LABEL_COLOURS.items()]
    items.append(f"<span><i class=\"repeat\"></i>{_esc(REPEAT_NOTE)}</span>")
    items.append("<span>│ the email was sent</span>")
    return "<div class=\"legend\">" + "".join(items) + "</div>"


def _labels(email: Email) -> str:
    tally: Dict[str, int] = {}
    for hit in email.hits:
        tally[hit.label] = tally.get(hit.label, 0) + 1
    text = " · ".join(f"{label} {tally[label]}" for label in sorted(tally, key=_label_order))
    if email.truncated:
        text += f" (latest {len(email.hits)} hits)"
    elsewhere = sum(hit.elsewhere for hit in email.hits)
    if elsewhere:
        text += f" · {elsewhere} {ELSEWHERE_HINT}"
    return text or "–"


def _label_order(label: str) -> Tuple[int, str]:
    order = list(LABEL_COLOURS)
    return (order.index(label) if label in order else len(order), label)


def _listed(emails: Sequence[Email], table_rows: Optional[int], picked: Sequence[str] = ()) -> List[Email]:
    """The emails the table lists, newest first: the ``table_rows`` newest (None: all), the
    ``picked`` tags', and the other copies of an email sent individually among them (its copies
    stand together)."""
    if table_rows is None or len(emails) <= table_rows:
        return list(emails)
    wanted = {email.row.id for email in emails[:table_rows]}.union(picked)
    groups = {email.row.group for email in emails if email.row.id in wanted and email.row.group}
    return [email for email in emails if email.row.id in wanted or email.row.group in groups]


def _listed_note(listed: Sequence[Email], emails: Sequence[Email], table_rows: Optional[int]) -> str:
    if len(listed) == len(emails):
        return ""
    newest = len(emails) if table_rows is None else min(len(emails), table_rows)
    more = len(listed) - newest
    extra = f", and {more} more: the copies of emails sent individually, or one you picked" if more else ""
    return (f"<p class=\"note\">The {newest} newest of {len(emails)} tracked emails{extra}. Every one is "
            "in register.csv, which opens in any spreadsheet (the tray's “Open register in spreadsheet”); "
            "<code>mailtracker report --all</code> lists them all here.</p>")


def _table(emails: Sequence[Email]) -> str:
    if not emails:
        return "<p class=\"note\">Nothing tracked yet.</p>"
    head = ("ID", "To", "Subject", "Sent", "Opens", "First open", "Last open", "Clicks", "Replies", "You",
            "Machines", "Hits", "Labels", "Reminder", "Group")
    out = ["<table class=\"emails\"><thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
           + "</tr></thead><tbody>"]
    # The copies of an email sent individually stand together, one row per recipient.
    by_id = {email.row.id: email for email in emails}
    ordered = [by_id[row.id] for members in grouped([email.row for email in emails]) for row in members]
    for email in ordered:
        row = email.row
        cells = [
            (_esc(row.short_id), ""),
            (_esc(display_name(row)), ""),
            (_esc(row.subject or "(no subject)"), ""),
            (_sent_cell(email), "t"),
            (_opens(row), "n"),
            (_stamp(row.first_open), "t"),
            (_stamp(row.last_open), "t"),
            (_clicks(row), "n"),
            (_replies(row), "n"),
            (str(row.self_hits), "n"),
            (str(row.machine_hits), "n"),
            (str(row.hits), "n"),
            (_esc(_labels(email)), ""),
            (_stamp(row.remind_at), "t"),
            (_esc(row.group[:8]), ""),
        ]
        out.append(f"<tr id=\"t-{_esc(row.short_id)}\">" + "".join(
            f"<td class=\"{cls}\">{text}</td>" if cls else f"<td>{text}</td>" for text, cls in cells)
            + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _sent_words(email: Email) -> str:
    """'sent 2026-12-07 10:42', or the time with what it is when Thunderbird's send time is not known."""
    how = email.row.sending[1]
    when = _local(email.sent) if email.sent else ""
    if how == "sent":
        return f"sent {when}"
    short, why = SENDING_NOTES[how]
    return f"{when} ({short}): {why}" if when else f"{short}: {why}"


def _sent_cell(email: Email) -> str:
    """The Sent column: Thunderbird's send time; a mint time says so, with why on hover."""
    how = email.row.sending[1]
    if how == "sent" and email.sent:
        return _esc(_local(email.sent))
    if how == "sent":
        return "–"
    short = SENDING_NOTES[how][0]
    text = f"{_local(email.sent)} ({short})" if email.sent else short
    return f"<span class=\"note\" title=\"{_esc(_sent_words(email))}\">{_esc(text)}</span>"


def _clicks(row: Row) -> str:
    """The click count, with each clicked link's words on hover."""
    clicks = row.clicks
    clicked = [f"{link.text or link.target}: {link.clicks}" for link in row.links if link.clicks]
    return f"<span title=\"{_esc('; '.join(clicked))}\">{clicks}</span>" if clicked else str(clicks)


def _opens(row: Row) -> str:
    """The open count; for a mail whose opens cannot show, what it shows instead, the rule on hover."""
    if row.not_seen and not row.opens:
        return f"<span class=\"notseen\" title=\"{_esc(row.not_seen_reason)}\">{_esc(row.not_seen_short)}</span>"
    return str(row.opens)


def _replies(row) -> str:
    """People's replies, who replied on hover; "not delivered" (the server's reason on hover) for a bounce."""
    if row.undelivered:
        why = f"{row.undelivered}: {row.undelivered_reason}"
        return f"<span class=\"problem\" title=\"{_esc(why)}\">not delivered</span>"
    return f"<span title=\"{_esc(row.replied_by)}\">{row.replies}</span>" if row.replies else "0"


def _stamp(stamp: str) -> str:
    return _esc(_local(parse_timestamp(stamp))) if stamp else "–"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
