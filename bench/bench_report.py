"""Benchmark what a busy sender's history costs the views that read every row: the HTML report
(the tray's default action), ``report --all``, and reading the read model's rows (the tray after
each fold, ``list``, the Sent list's helper).

For each size in ``--tags`` (default 5k and 50k), a synthetic history of ``--hits`` hits is
written exactly as ``bench_fold.py`` writes one (its ``make_history``) and folded; then each
view is timed ``--repeats`` times in this process and the median printed, with the page's size.
The report is timed twice: as of now (the history ended months ago: the opens-per-day chart
reads almost no timeline) and as of the history's last open (every email opened in the chart's
60 days reads its timeline: the worst case). The reference is the smallest size's figure in the
same run: the ratio says how the cost grows with the history.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fold import human, load_average, make_history, parse_count, seconds  # noqa: E402

from mailtracker.core.timestamps import parse_timestamp  # noqa: E402
from mailtracker.desktop.fold import fold  # noqa: E402
from mailtracker.desktop.register import Register  # noqa: E402
from mailtracker.desktop.report import TABLE_ROWS, build_report  # noqa: E402


def timed(call, repeats: int):
    """The median seconds of ``repeats`` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure(root: Path, tags: int, args) -> dict:
    history_args = argparse.Namespace(seed=1, tags=tags, self_fetches=2, hits_per_day=1000, restart_days=30,
                                      come_back=0.15)
    history = make_history(root / f"tags-{human(tags)}", args.hits, history_args)
    fold(history.home)
    figures = {}
    with Register.load(history.home) as register:
        figures["rows"], rows = timed(register.rows, args.repeats)
        last_open = parse_timestamp(max(row.last_open for row in rows if row.last_open)) + 3600
        for name, now, table_rows in (("report", None, TABLE_ROWS), ("report, chart full", last_open, TABLE_ROWS),
                                      ("report --all", None, None)):
            figures[name], page = timed(lambda: build_report(register, now, table_rows), args.repeats)
            figures[f"{name} bytes"] = len(page.encode("utf-8"))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", default="5k,50k", help="tracked emails, comma-separated (default 5k,50k)")
    parser.add_argument("--hits", type=parse_count, default=1_000_000, help="hits in each history (default 1M)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per view; median reported (default 3)")
    parser.add_argument("--dir", help="where to build the temporary homes (default: the system temp dir)")
    args = parser.parse_args()
    sizes = [parse_count(size) for size in args.tags.split(",")]
    print(f"Load average at the start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="mailtracker-bench-report-", dir=args.dir) as root:
        results = {size: measure(Path(root), size, args) for size in sizes}
    base = results[sizes[0]]
    columns = " | ".join(f"{human(size)} tags" for size in sizes)
    print(f"\n| view | {columns} | {human(sizes[-1])} ÷ {human(sizes[0])} |")
    print("|---|" + "---:|" * (len(sizes) + 1))
    for name in ("rows", "report", "report, chart full", "report --all"):
        cells = [seconds(results[size][name]) + (f", {results[size][name + ' bytes'] / 2**20:.1f} MiB"
                                                 if name != "rows" else "") for size in sizes]
        print(f"| {name} | {' | '.join(cells)} | {results[sizes[-1]][name] / base[name]:.1f}× |")
    print(f"\nMedian of {args.repeats} each, in one process; load average after: {load_average()}. "
          f"The report's table lists the {TABLE_ROWS} newest emails ('--all': every one).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
