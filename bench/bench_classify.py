"""Precision and recall of hit labelling on the labelled corpus (tests/data/hits_corpus.csv).

Usage: python bench/bench_classify.py [--no-apple-ranges]

Runs the corpus through the real fold in a temporary home and prints, per label,
precision, recall and support, then every trace it labels differently from the
corpus, with the reason it gave. Target: 0.95 or more for each label.
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.corpus import person_machine_scores, run_corpus, scores  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-apple-ranges", action="store_true",
                        help="classify as a user who has not loaded Apple's ranges")
    args = parser.parse_args()
    for mode in ("truncated", "full", "hash"):
        with tempfile.TemporaryDirectory() as root:
            results = run_corpus(Path(root) / "home", with_apple_ranges=not args.no_apple_ranges,
                                 client_address=mode)
        print(f"client_address = {mode}")
        print(f"  {'label':<10}{'precision':>10}{'recall':>8}{'support':>9}")
        for label, (precision, recall, support) in [*scores(results).items(),
                                                    *person_machine_scores(results).items()]:
            if support:
                print(f"  {label:<10}{precision:>10.3f}{recall:>8.3f}{support:>9}")
    misses = [(row, label, reason) for row, label, reason in results if label != row["expected"]]
    print(f"\n{len(results) - len(misses)} of {len(results)} traces labelled as the corpus says.")
    for row, label, reason in misses:
        print(f"- {row['email']} +{row['seconds_after_send']} s: expected {row['expected']}, got {label} "
              f"({reason}); corpus note: {row['case']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
