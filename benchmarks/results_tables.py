"""Write results/*.csv: one row per pretrained tag with its card's scores and a measured CPU throughput.

    .venv/bin/python benchmarks/results_tables.py            # every registered tag with bundled weights
    .venv/bin/python benchmarks/results_tables.py --check    # compare the files with the cards; write nothing

Each row: model, tag, data version, input size, parameters (M), forward GFLOPs per image, CPU images/s (batch
1, one thread, best of 5), the recipe's method, seeds, delta_m mean and std over seeds against the card's
baseline, and every headline metric (mean, std over seeds). Everything but the images/s is read from the cards
(``mtlzoo.results_tables``); rerun after retraining or adding weights, then ``python docs/hooks.py --write``.
"""

from __future__ import annotations

import argparse
import sys

from mtlzoo.models.pretrained import PRETRAINED_CFGS
from mtlzoo.results_tables import build_tables, check_tables, write_tables


def _registered() -> list:
    return [PRETRAINED_CFGS.get(name) for name in PRETRAINED_CFGS.names()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare results/*.csv with the cards; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = check_tables(build_tables(_registered(), measure=False))
        print("\n".join(problems) or "results/*.csv match the cards")
        return 1 if problems else 0
    tables = build_tables(_registered())
    for path in write_tables(tables):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
