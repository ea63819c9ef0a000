"""The register: ``register.csv``, the user's view (one row per tag with its open
counts), and ``Register``, the read model every reader of the counts goes through.

The register is derived; the logs are the truth. It is replaced atomically
(temporary file, then rename), so a reader never sees half of it, and a
register that cannot be replaced (open in a spreadsheet on Windows) costs
nothing: the fold keeps its counts and writes it later.
"""

import csv
import logging
import os
from collections import abc
from dataclasses import dataclass, field, fields, replace
from itertools import repeat
from operator import attrgetter, itemgetter, or_
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from mailtracker.core.bulk import collector_paused
from mailtracker.core.csvcodec import BOM, FORMULA_START_PATTERN, QUOTED_PATTERN, format_row, neutralise, restore
from mailtracker.core.errors import RegisterLockedError, UnknownTagError
from mailtracker.core.paths import Home
from mailtracker.core.tokens import SHORT_ID_LENGTH, TOKEN_LENGTH, short_id
from mailtracker.desktop.counts import Counts
from mailtracker.desktop.platforms import Platform
from mailtracker.desktop.tags import TAG_COLUMNS
from mailtracker.desktop.view import ROW_KEYS, Event, StoredRow, ViewReader, compact_json, compact_json_each, view_path
from mailtracker.desktop.visibility import SHORT_WORDS, WORDS, group_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Link:
    """One tracked link of a mail: its number in the mail, where it goes, what it says, and
    its clicks."""

    link: int
    target: str = ""
    text: str = ""
    clicks: int = 0
    first_click: str = ""
    last_click: str = ""

    def to_json(self) -> dict:
        return {"link": self.link, "target": self.target, "text": self.text, "clicks": self.clicks,
                "first_click": self.first_click, "last_click": self.last_click}


# How a view labels a send time that is not Thunderbird's (Row.sending's "how"): short, then why.
SENDING_NOTES = {
    "minted": ("minted", "the send time was not recorded (an older log): this is when its pixel was "
               "made, moments before Send"),
    "unconfirmed": ("minted, send not confirmed", "Thunderbird never confirmed sending it: this is "
                    "when its pixel was made"),
    "unsent": ("not sent", "its pixel was made, but the mail was never sent (a draft discarded, or "
               "the send failed)"),
    "tagged": ("tagged", "a tag made with 'mailtracker tag': this is when it was made"),
}

# A field's metadata: "csv": False keeps it out of register.csv.
_NOT_IN_CSV = {"csv": False}


@dataclass(frozen=True)
class Row:
    """One tag's row: what tags.csv says of its mail, and its counts. The fields stand in
    register.csv's column order; those marked so are not in the file. Built by ``Row.of``;
    written to register.csv by ``csv_line``, to the read model and the add-on by ``to_json``,
    read back by ``from_json``."""

    id: str
    short_id: str
    name: str = field(default="")
    subject: str = field(default="")
    recipients: str = field(default="")
    created: str = ""
    status: str = ""
    message_id: str = field(default="")
    opens: int = 0
    first_open: str = ""
    last_open: str = ""
    hits: int = 0
    self_hits: int = 0
    machine_hits: int = 0
    clicks: int = 0
    first_click: str = ""
    last_click: str = ""
    # The mail a tag is one recipient's copy of ("send individually"); empty otherwise.
    group: str = ""
    # When to remind the sender if nobody has opened (or, with remind_if, answered) the mail by then.
    remind_at: str = ""
    # People's replies (replies.csv; an automatic answer is not one), when, and who by address.
    replies: int = 0
    first_reply: str = ""
    last_reply: str = ""
    replied_by: str = ""
    # The recipients a delivery report said the mail did not reach, and its reason.
    undelivered: str = ""
    undelivered_reason: str = ""
    # What the reminder waits for: "" or "not_opened" (an open, a click or a reply), "no_reply".
    remind_if: str = ""
    # When Thunderbird sent it (tags.csv's sent_at); '' for mail not sent, or sent before this was noted.
    sent_at: str = ""
    # Opens the product cannot see (desktop/visibility.py): "no_images" (a recipient's mail program
    # does not load images) or "not_measurable" (only proxies or machines fetch), when every
    # recipient still to open the mail is so; those recipients; each one's rule and the mail
    # that made it so.
    not_seen: str = ""
    not_seen_by: str = ""
    not_seen_reason: str = ""
    # The sender's address the mail went out from.
    identity: str = field(default="", metadata=_NOT_IN_CSV)
    # The times of the opens from a network and mail program none of the earlier opens came from
    # (desktop/elsewhere.py: "opened on another device or by someone else (forwarded?)"), by spaces.
    opened_elsewhere: str = field(default="", metadata=_NOT_IN_CSV)
    links: Sequence[Link] = field(default=(), metadata=_NOT_IN_CSV)

    @property
    def opened(self) -> bool:
        """Whether a person read the mail: an open, or a click (which proves it even when no
        image was loaded)."""
        return bool(self.opens or self.clicks)

    @property
    def read(self) -> bool:
        """Whether the mail is known to be read: opened, clicked, or replied to (a reply proves
        it even from a mail program that never loads images)."""
        return self.opened or self.replies > 0

    @property
    def sending(self) -> Tuple[str, str]:
        """When the mail went out, as every view shows it: (time, how). ``how`` is "sent" (the
        time Thunderbird sent it), "minted" (sent before send times were noted: the time its
        pixel was made, moments before Send), "unsent" (minted, never sent: no time),
        "unconfirmed" (minted; the send was never confirmed: the mint time) or "tagged" (a tag
        made with 'mailtracker tag': when it was made)."""
        return sending_of(self.status, self.sent_at, self.created)

    @classmethod
    def of(cls, tag_id: str, tag: Mapping[str, str], counts: Counts,
           known_links: Mapping[str, Sequence[str]], replies: Mapping[str, object] = {}) -> "Row":
        """The row of a tag from its tags.csv fields, its counts, its links as links.csv
        names them (number as a string -> [target, text]) and its replies' columns
        (``replies.replies_columns``); the fold adds the "not seen" columns
        (``visibility.mail_columns``) and the places of its opens."""
        links = ()
        clicked = counts.links
        if known_links or clicked:
            found = []
            for number in sorted(set(known_links) | set(clicked), key=int):
                target, text = known_links.get(number, ("", ""))
                n, first, last = clicked.get(number, (0, "", ""))
                found.append(Link(int(number), target, text, n, first, last))
            links = tuple(found)
        values = {"id": tag_id, "short_id": short_id(tag_id)}
        values.update(_DEFAULTS)  # in the fields' order
        values.update(zip(_TAG_FIELDS, map(tag.get, _TAG_FIELDS, _EMPTY_STRINGS)))
        values.update(zip(_COUNTED_FIELDS, _counted(counts)))
        values.update(replies)
        values["links"] = links
        return cls._made(values)

    def but(self, **changes) -> "Row":
        """This row with these fields changed: ``dataclasses.replace``, without its checks and its
        frozen ``__init__`` (a first fold changes most rows' "not seen" or places)."""
        unknown = set(changes) - set(self.__dict__)
        if unknown:
            raise TypeError(f"a register row has no field {', '.join(sorted(unknown))}")
        return self._made({**self.__dict__, **changes})

    @classmethod
    def _made(cls, values: Dict[str, object]) -> "Row":
        """A row of every field's value (``values`` becomes its own), without the frozen
        ``__init__``'s call per field: a first fold makes 50,000 rows."""
        row = object.__new__(cls)
        object.__setattr__(row, "__dict__", values)
        return row

    @property
    def not_seen_words(self) -> str:
        """What the mail shows instead of "not opened" when its opens cannot show ("" otherwise)."""
        return WORDS.get(self.not_seen, "")

    @property
    def not_seen_short(self) -> str:
        """The same in a narrow column ("not visible", "not measurable")."""
        return SHORT_WORDS.get(self.not_seen, "")

    def opened_elsewhere_at(self, stamp: str) -> bool:
        """Whether the open at ``stamp`` came from somewhere new (a hint, never a count of people)."""
        return bool(stamp) and stamp in self.opened_elsewhere.split()

    def to_json(self) -> dict:
        """Every field, ``opened``, ``read`` and ``sending`` (as ``sent_time``, ``sent_how``): as the
        read model stores a row and the add-on gets it."""
        doc = dict(self.__dict__)  # every field: the frozen __init__ and ``_made`` set each one
        doc["opened"] = self.opened
        doc["read"] = self.read
        doc["sent_time"], doc["sent_how"] = self.sending
        doc["links"] = [link.to_json() for link in self.links]
        return doc

    @classmethod
    def from_json(cls, doc: Mapping) -> "Row":
        """``to_json``'s dict back; a field an older writer did not know takes its default.
        Made as ``_made`` makes a row (the tray, the report and the Sent list read 50,000)."""
        if "id" not in doc or "short_id" not in doc:
            raise TypeError("a register row needs its id and short_id")
        values = {"id": doc["id"], "short_id": doc["short_id"]}
        values.update(_DEFAULTS)  # in the fields' order
        values.update((name, doc[name]) for name in _SCALARS if name in doc)
        values["links"] = _links(doc.get("links"))
        return cls._made(values)

    @classmethod
    def from_stored(cls, values: Sequence) -> "Row":
        """A row from its values as the read model keeps them (``stored_values``: ``view.ROW_KEYS``'
        order), with no dict between (the tray, the report and the Sent list read 50,000)."""
        if len(values) != len(ROW_KEYS):  # not this schema's: by name, with the defaults
            return cls.from_json(dict(zip(ROW_KEYS, values)))
        fields = _FIELDS_IN_ORDER.copy()
        fields.update(zip(_STORED_SCALARS, values))
        fields["links"] = _links(values[_LINKS_AT])
        return cls._made(fields)

    def stored_values(self) -> tuple:
        """``to_json``'s values in the order the read model keeps them (``view.ROW_KEYS``)."""
        return _stored_cells(self.__dict__)[:-1] + (
            [link.to_json() for link in self.links], self.opened, self.read) + self.sending

    def csv_line(self) -> str:
        """This row in register.csv, as text with its line end: the one place its cells are written.
        Every cell goes through the neutraliser: any column may hold what came from outside (a
        crafted tags.csv row, a group the add-on named), and a spreadsheet must never read one
        as a formula."""
        return format_row([neutralise(str(cell)) for cell in _register_cells(self.__dict__)])

    def with_counts_of(self, members: Sequence["Row"]) -> "Row":
        """This row with the counts summed over ``members`` (the copies of one mail sent
        individually), the first times the earliest, the last the latest, the first copy's
        bounce reason, and no links."""
        def earliest(name):
            return min((getattr(m, name) for m in members if getattr(m, name)), default="")

        def latest(name):
            return max((getattr(m, name) for m in members if getattr(m, name)), default="")

        def joined(name):
            return "; ".join(getattr(m, name) for m in members if getattr(m, name))

        not_seen = group_state(members)
        return replace(
            self, opens=sum(m.opens for m in members), hits=sum(m.hits for m in members),
            self_hits=sum(m.self_hits for m in members), machine_hits=sum(m.machine_hits for m in members),
            clicks=sum(m.clicks for m in members), first_open=earliest("first_open"),
            last_open=latest("last_open"), first_click=earliest("first_click"),
            last_click=latest("last_click"), replies=sum(m.replies for m in members),
            first_reply=earliest("first_reply"), last_reply=latest("last_reply"),
            replied_by=joined("replied_by"), undelivered=joined("undelivered"),
            undelivered_reason=next((m.undelivered_reason for m in members if m.undelivered_reason), ""),
            not_seen=not_seen, not_seen_by=joined("not_seen_by") if not_seen else "",
            not_seen_reason=joined("not_seen_reason") if not_seen else "",
            opened_elsewhere=" ".join(m.opened_elsewhere for m in members if m.opened_elsewhere), links=())


def sending_of(status: str, sent_at: str, created: str) -> Tuple[str, str]:
    """``Row.sending`` of a row with these fields."""
    if status == "sent":
        return (sent_at, "sent") if sent_at else (created, "minted")
    if status == "unsent":
        return "", "unsent"
    if status == "pending":
        return created, "unconfirmed"
    return created, "tagged"


_SCALARS = tuple(f.name for f in fields(Row) if f.name != "links")
_LINK_FIELDS = tuple(f.name for f in fields(Link))
REGISTER_COLUMNS = tuple(f.name for f in fields(Row) if f.metadata.get("csv", True))
# A row's cells, from its own dict (every field is there: ``to_json``), quicker than attributes.
_register_cells = itemgetter(*REGISTER_COLUMNS)
# What ``Row.of`` takes from a tag's tags.csv fields and from its counts, and the defaults.
_TAG_FIELDS = ("name", "subject", "recipients", "created", "status", "message_id", "group", "remind_at",
               "remind_if", "sent_at", "identity")
_EMPTY_STRINGS = ("",) * len(_TAG_FIELDS)
_COUNTED_FIELDS = ("opens", "first_open", "last_open", "hits", "self_hits", "machine_hits", "clicks",
                   "first_click", "last_click")
_counted = attrgetter(*_COUNTED_FIELDS)
_DEFAULTS = {f.name: f.default for f in fields(Row) if f.name not in ("id", "short_id")}
# The read model keeps a row as the values of ``to_json``'s keys in its own order (``view.ROW_KEYS``):
# the fields up to the links, then what ``to_json`` adds after them.
_ADDED_KEYS = ("opened", "read", "sent_time", "sent_how")
if ROW_KEYS[-len(_ADDED_KEYS) - 1:] != ("links", *_ADDED_KEYS) or \
        sorted(ROW_KEYS) != sorted((*_SCALARS, "links", *_ADDED_KEYS)):
    raise ImportError("view.ROW_KEYS does not name every key of Row.to_json")
_stored_cells = itemgetter(*ROW_KEYS[:-len(_ADDED_KEYS)])
# The scalar fields, as a stored row starts with them, and where its links stand.
_STORED_SCALARS = ROW_KEYS[:-len(_ADDED_KEYS) - 1]
_LINKS_AT = ROW_KEYS.index("links")
# Every field, in their order (a row's dict keeps it: ``to_json`` gives the keys so).
_FIELDS_IN_ORDER = {"id": "", "short_id": "", **_DEFAULTS}
_REPLY_DEFAULTS = tuple(_DEFAULTS[name] for name in ROW_KEYS[ROW_KEYS.index("replies"):ROW_KEYS.index("not_seen")])
_NOT_SEEN_DEFAULTS = ("", "", "")
# Where each register column stands in a stored row.
_REGISTER_AT = tuple(ROW_KEYS.index(name) for name in REGISTER_COLUMNS)
if ROW_KEYS[2:2 + len(_TAG_FIELDS) + len(_COUNTED_FIELDS)] != _TAG_FIELDS + _COUNTED_FIELDS:
    raise ImportError("view.ROW_KEYS does not start with the tags.csv fields and the counts")
_tag_cells = itemgetter(*_TAG_FIELDS)


# A row holds every field of tags.csv (the fold state keeps them in the row alone: ``stored_tag_fields``).
if set(_TAG_FIELDS) != set(TAG_COLUMNS) - {"id"}:
    raise ImportError("Row does not take every field of tags.csv")


def _links(stored: Optional[Sequence[Mapping]]) -> Tuple[Link, ...]:
    """A row's links from ``Link.to_json``'s dicts; a key an older writer did not know takes its default."""
    return tuple(Link(**{key: link[key] for key in _LINK_FIELDS if key in link}) for link in stored) if stored else ()


def stored_tag_fields(values: Sequence) -> Dict[str, str]:
    """The tags.csv fields of a row as the read model keeps it (``Row.stored_values``)."""
    return dict(zip(_TAG_FIELDS, values[2:2 + len(_TAG_FIELDS)]))


def plain_rows_values(tag_ids: Sequence[str], tags: Sequence[Mapping[str, str]], counts: Sequence[Counts],
                      opened_elsewhere: Sequence[str]) -> List[tuple]:
    """``Row.of(tag_id, tag, counts, {}).but(opened_elsewhere=...).stored_values()`` of each tag, by the
    column (a first fold writes 50,000 rows): for tags with no links, no clicks and no replies, whose
    "not seen" columns are empty."""
    if not tag_ids:
        return []
    return list(zip(*_plain_columns(tag_ids, tags, counts, opened_elsewhere)))


def plain_stored_rows(tag_ids: Sequence[str], tags: Sequence[Mapping[str, str]], counts: Sequence[Counts],
                      opened_elsewhere: Sequence[str]) -> List[StoredRow]:
    """``stored_rows_of_values(plain_rows_values(...))``, the same: the register lines by the column
    from the columns the rows are made of, not from the rows taken apart again."""
    if not tag_ids:
        return []
    columns = _plain_columns(tag_ids, tags, counts, opened_elsewhere)
    return stored_rows_of_values(list(zip(*columns)), columns)


def _plain_columns(tag_ids: Sequence[str], tags: Sequence[Mapping[str, str]], counts: Sequence[Counts],
                   opened_elsewhere: Sequence[str]) -> List[Sequence]:
    """The columns of ``plain_rows_values``, in ``view.ROW_KEYS``' order."""
    n = len(tag_ids)
    try:
        cells = list(zip(*map(_tag_cells, tags)))
    except KeyError:  # a tag without some field: as Row.of reads it, empty
        cells = list(zip(*(tuple(map(tag.get, _TAG_FIELDS, _EMPTY_STRINGS)) for tag in tags)))
    counted = list(zip(*map(_counted, counts)))
    opened = list(map(bool, map(or_, counted[_COUNTED_FIELDS.index("opens")],
                                counted[_COUNTED_FIELDS.index("clicks")])))
    status, sent_at, created = (cells[_TAG_FIELDS.index(name)] for name in ("status", "sent_at", "created"))
    defaults = [_Same(value, n) for value in _REPLY_DEFAULTS + _NOT_SEEN_DEFAULTS]
    return [tag_ids, list(map(short_id, tag_ids)), *cells, *counted, *defaults, opened_elsewhere, ([],) * n,
            opened, opened, *zip(*map(sending_of, status, sent_at, created))]


class _Same(abc.Sequence):
    """A column of one value ``n`` times (a plain row's replies and "not seen" columns): the
    register lines write it once (``_lines_by_column``)."""

    def __init__(self, value, n: int):
        self.value, self.n = value, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return repeat(self.value, self.n)

    def __getitem__(self, at):
        if isinstance(at, slice):
            return [self.value] * len(range(*at.indices(self.n)))
        if not -self.n <= at < self.n:
            raise IndexError(at)
        return self.value


# From this many rows, ``csv_lines`` writes them by the column (a first fold: 50,000 rows in
# about 0.35 s, where ``Row.csv_line`` one by one took 0.55 s, measured with the collector off).
COLUMNS_FROM = 2_000


def csv_lines(rows: Sequence[Row]) -> List[str]:
    """Each row's ``csv_line``, the same text: by the column with polars for many rows (when
    the fast fold's polars is installed), else one by one."""
    if len(rows) >= COLUMNS_FROM:
        try:
            return _csv_lines_by_column(rows)
        except ImportError:
            pass  # no polars: the fast fold is not installed
        except Exception as exc:  # a column polars cannot take whole (mixed types, bad text)
            log.debug("register lines written one by one: %s", exc)
    return [row.csv_line() for row in rows]


def stored_rows(rows: Sequence[Row]) -> List[StoredRow]:
    """The rows as the read model keeps them, each with its register line."""
    return [(row.id, row.short_id, row.message_id, row.created, compact_json(row.stored_values()), line)
            for row, line in zip(rows, csv_lines(rows))]


def stored_rows_of_values(values: Sequence[tuple], columns: Optional[Sequence[Sequence]] = None) -> List[StoredRow]:
    """``stored_rows`` of rows given as their ``stored_values`` (a first fold's every row), and
    ``columns``, the same values by column, when there are: the register lines by the column when
    there are many."""
    lines = None
    if len(values) >= COLUMNS_FROM:
        columns = columns or list(zip(*values))
        try:
            lines = _lines_by_column((name, columns[at]) for name, at in zip(REGISTER_COLUMNS, _REGISTER_AT))
        except ImportError:
            pass  # no polars: the fast fold is not installed
        except Exception as exc:  # as in csv_lines
            log.debug("register lines written one by one: %s", exc)
    if lines is None:
        lines = [Row.from_stored(cells).csv_line() for cells in values]
    return [(cells[0], cells[1], cells[7], cells[5], text, line)
            for cells, text, line in zip(values, compact_json_each(values), lines)]


def _csv_lines_by_column(rows: Sequence[Row]) -> List[str]:
    """``csv_lines`` with polars: each column a series, each text cell neutralised and quoted as
    ``neutralise`` and ``csv_field`` would; TypeError for a column it cannot take whole."""
    return _lines_by_column(zip(REGISTER_COLUMNS, zip(*[_register_cells(row.__dict__) for row in rows])))


def _lines_by_column(columns: Iterable[Tuple[str, Sequence]]) -> List[str]:
    """The register lines of rows given as their cells, (column name, cells) in REGISTER_COLUMNS'
    order, by the column (``_csv_lines_by_column``)."""
    import polars as pl

    def written(cell: pl.Expr) -> pl.Expr:
        neutralised = pl.when(cell.str.contains(FORMULA_START_PATTERN)).then(pl.lit("'") + cell).otherwise(cell)
        return pl.when(neutralised.str.contains(QUOTED_PATTERN)).then(
            pl.lit('"') + neutralised.str.replace_all('"', '""', literal=True) + pl.lit('"')).otherwise(neutralised)

    series, cells = [], []
    for name, column in columns:
        if isinstance(column, _Same):  # the same cell in every line
            cells.append(pl.lit(format_row([neutralise(str(column.value))])[:-2]))
            continue
        series.append(pl.Series(name, column, strict=True))
        if series[-1].null_count():  # str(None) is "None" to csv_line; polars would drop the line
            raise TypeError(f"column {name} holds None")
        if series[-1].dtype == pl.Int64:  # a count: as str() writes it, nothing to change
            cells.append(pl.col(name).cast(pl.String))
        elif series[-1].dtype == pl.String:
            cells.append(written(pl.col(name)))
        else:
            raise TypeError(f"column {name} holds {series[-1].dtype}")
    # One query for every column: polars writes them side by side.
    return pl.DataFrame(series).select(pl.concat_str(cells, separator=",") + "\r\n").to_series().to_list()


def write_register(path: Path, rows: Sequence[Row], new_opens: int = 0) -> None:
    write_register_lines(path, csv_lines(rows), new_opens)


def write_register_lines(path: Path, lines: Sequence[str], new_opens: int = 0,
                         platform: Optional[Platform] = None) -> None:
    """Replace register.csv with these rows (``Row.csv_line``), under its header.

    On Windows a program holding the file open without sharing it (Excel does) makes the
    replace fail with a sharing violation, which Python raises as PermissionError
    (WinError 32, or 5): the register is then left as it is, and ``RegisterLockedError``
    says the counts are kept; the next fold writes it. Elsewhere a PermissionError
    means the folder's permissions, and is said so."""
    platform = platform or Platform.current()
    data = "".join([BOM + format_row(REGISTER_COLUMNS), *lines]).encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        platform.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        kept = f"the {new_opens} new opens are kept" if new_opens else "nothing is lost"
        if isinstance(exc, PermissionError) and platform.is_windows:
            raise RegisterLockedError(
                f"{path.name} is open in another program; {kept} and will be written "
                "when it is closed"
            ) from None
        raise RegisterLockedError(
            f"cannot write {path}: {exc.strerror or exc}; {kept} and will be written "
            "when this is fixed"
        ) from None


def read_register(path: Path) -> List[Dict[str, str]]:
    """register.csv as dicts, by its header (for tests and tools; programs read ``Register``).

    A row the csv module refuses (a field beyond its limit, from an older writer or a
    spreadsheet) is skipped with a warning; the rows after it are read."""
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                log.warning("skipped an unreadable row of %s (line %d): %s", path.name, reader.line_num, exc)
                continue
            rows.append(row)
    for row in rows:
        for col in REGISTER_COLUMNS:
            row[col] = restore(row.get(col) or "")
    return rows


def grouped(rows: Sequence[Row]) -> List[List[Row]]:
    """Rows in order, the copies of one "send individually" mail together where its
    first copy stands: a list of groups, a lone tag being a group of one."""
    groups: List[List[Row]] = []
    by_group: Dict[str, List[Row]] = {}
    for row in rows:
        group_id = row.group
        if group_id and group_id in by_group:
            by_group[group_id].append(row)
            continue
        members = [row]
        groups.append(members)
        if group_id:
            by_group[group_id] = members
    return groups


def display_name(row: Row) -> str:
    """Who a tracked email went to, as people read it: name, else recipients, else the tag."""
    return row.name or row.recipients or f"tag {row.short_id}"


class Register:
    """The read model: the register's rows and each tag's latest hits as the last fold
    left them. Every reader (the native host, the tray, the report, the CLI) asks here;
    none of them folds, takes the fold's lock or waits for a fold in progress.

    Use as ``with Register.load(home) as register``.
    """

    def __init__(self, reader: ViewReader):
        self._reader = reader

    @classmethod
    def load(cls, home: Home) -> "Register":
        return cls(ViewReader(view_path(home.state_dir)))

    def __enter__(self) -> "Register":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    def rows(self) -> List[Row]:
        """Every tag's row, oldest first."""
        with collector_paused():
            return list(map(Row.from_stored, self._reader.row_values()))

    def get(self, tag_id: str) -> Optional[Row]:
        doc = self._reader.row(tag_id)
        return Row.from_json(doc) if doc is not None else None

    def find(self, key: str) -> Optional[Row]:
        """The row of a tag named by its id, its short id or its email's Message-ID.

        Raises UnknownTagError when a short id names several tags."""
        key = key.strip()
        if len(key) == TOKEN_LENGTH:
            row = self.get(key)
            if row is not None:
                return row
        if SHORT_ID_LENGTH <= len(key) < TOKEN_LENGTH:
            ids = self._reader.ids_with_prefix(key)
            if len(ids) > 1:
                raise UnknownTagError(f"{key!r} names {len(ids)} tags; give more characters")
            if ids:
                return self.get(ids[0])
        message_id = key.strip("<>")
        if message_id:
            ids = self._reader.ids_where("message_id", message_id)
            if ids:
                return self.get(ids[-1])
        return None

    def group(self, group_id: str) -> List[Row]:
        """The rows of one "send individually" mail, one per recipient's copy, oldest first."""
        if not group_id:
            return []
        return [row for row in self.rows() if row.group == group_id]

    def timeline(self, tag_id: str) -> List[Event]:
        """The tag's latest hits, oldest first: (time, label, counted, reason code, client)."""
        return self._reader.timeline(tag_id)

    def timelines(self, tag_ids: Iterable[str]) -> Dict[str, List[Event]]:
        """``timeline`` of each of these tags, read at once (a tag without hits is left out)."""
        return self._reader.timelines(tag_ids)

    def generation(self) -> int:
        """A number that changes whenever a fold changed what this model shows."""
        return self._reader.generation()
