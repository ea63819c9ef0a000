"""The labelled corpus of hit traces (tests/data/hits_corpus.csv), run through the
real fold, and scored. Used by tests/test_classify.py and bench/bench_classify.py."""

import csv
import hashlib
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

from mailtracker.core.csvcodec import format_row, header_line, neutralise
from mailtracker.core.hitline import HIT_COLUMNS
from mailtracker.core.origins import Origins
from mailtracker.core.paths import Home
from mailtracker.core.settings import init_home, load_config
from mailtracker.core.timestamps import utc_timestamp
from mailtracker.desktop.classify import explain
from mailtracker.desktop.fold import fold
from mailtracker.desktop.register import Register
from mailtracker.desktop.tags import mint_tag, record_self_fetch

DATA = Path(__file__).resolve().parent / "data"
CORPUS = DATA / "hits_corpus.csv"
APPLE_SAMPLE = DATA / "apple-egress-sample.csv"
SENT_AT = 1_795_000_000.0
DISPLAY_AFTER_S = 600


def load_corpus() -> List[Dict[str, str]]:
    with open(CORPUS, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def stored_client(address: str, mode: str) -> str:
    """The client column as a server with this privacy setting writes it."""
    if mode == "hash":
        return hashlib.sha256(b"corpus" + address.encode()).hexdigest()[:16]
    return address


def run_corpus(root: Path, with_apple_ranges: bool = True,
               client_address: str = "truncated") -> List[Tuple[Dict[str, str], str, str]]:
    """Fold every trace in a fresh home, the hits written as a server with this privacy
    setting writes them (the origin judged from the address before it is stored);
    returns (row, label, reason) in corpus order."""
    origins = Origins.shipped()
    home = Home.locate(str(root))
    init_home(home)
    config = load_config(home)
    if with_apple_ranges:
        from mailtracker.desktop.ranges import load_apple_ranges

        load_apple_ranges(home, APPLE_SAMPLE)
    rows = load_corpus()
    tags = {}
    for row in rows:
        if row["email"] not in tags:
            tag = mint_tag(home, config, name=row["email"])
            tags[row["email"]] = tag.id
            record_self_fetch(home, tag.id, "send", when=utc_timestamp(SENT_AT))
    hits_path = home.hits_dir(config) / "hits-corpus-2026-11-24.csv"
    with open(hits_path, "wb") as handle:
        handle.write(header_line(HIT_COLUMNS))
        for seq, row in enumerate(rows, start=1):
            offset = row["seconds_after_send"]
            if offset.startswith("@display+"):
                record_self_fetch(home, tags[row["email"]], "display",
                                  when=utc_timestamp(SENT_AT + DISPLAY_AFTER_S))
                offset = DISPLAY_AFTER_S + float(offset[len("@display+"):])
            handle.write(format_row([
                f"corpus.{seq:x}", utc_timestamp(SENT_AT + float(offset)), tags[row["email"]],
                row["method"], stored_client(row["client"], client_address),
                neutralise(row["user_agent"]), "", origins.lookup(row["client"]),
            ]).encode("utf-8"))
    fold(home)
    with Register.load(home) as register:
        timelines = {tag_id: register.timeline(tag_id) for tag_id in tags.values()}
    results = []
    for row in rows:
        stamp, label, counted, reason, client = timelines[tags[row["email"]]].pop(0)
        results.append((row, label, explain(reason)))
    return results


# The labels a hit can get.
LABELS = ("open", "proxy", "prefetch", "self", "click")


def scores(results, labels=LABELS) -> Dict[str, Tuple[float, float, int]]:
    """Precision, recall and support for each label."""
    true_pos, predicted, actual = Counter(), Counter(), Counter()
    for row, label, _ in results:
        predicted[label] += 1
        actual[row["expected"]] += 1
        if label == row["expected"]:
            true_pos[label] += 1
    return {
        label: (true_pos[label] / predicted[label] if predicted[label] else 1.0,
                true_pos[label] / actual[label] if actual[label] else 1.0,
                actual[label])
        for label in labels
    }


def person_machine_scores(results) -> Dict[str, Tuple[float, float, int]]:
    """Precision and recall of the one question users see: a person's open, or a machine's?"""
    def kind(label):
        return "person" if label in ("open", "proxy") else "machine" if label == "prefetch" else label
    return scores([(dict(row, expected=kind(row["expected"])), kind(label), reason)
                   for row, label, reason in results], labels=("person", "machine"))
