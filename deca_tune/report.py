"""``python -m deca_tune.report EXPERIMENT_DIR [--out DIR] [--formats md,tex,csv,html]``.

A thin entry point: the tables and figures are built by :mod:`analysis.report`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from analysis.experiment import ExperimentError
from analysis.report import FORMATS, build_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deca_tune.report",
        description="Tables (Markdown, LaTeX, CSV, HTML) and figures (PNG) of an experiment folder.")
    parser.add_argument("experiment", help="the experiment folder (<storage>/<name>)")
    parser.add_argument("--out", help="output folder (default: EXPERIMENT/report)")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    parser.add_argument("--split", default="test_clean",
                        help="metric prefix of the result tables (default: test_clean; e.g. test)")
    parser.add_argument("--interpretability", nargs="*", default=[],
                        help="interpretability exports (user,item,rating,probability) for Fig. 6; "
                             "default: *interpretab*.csv files inside the experiment")
    parser.add_argument("--scores", nargs="*", default=[],
                        help="clean-score exports for the noise-detection table; "
                             "default: *clean_scores*.csv files inside the experiment")
    parser.add_argument("--data-root", help="data root for Table 1 (default: $DECA_TUNE_DATA)")
    parser.add_argument("--ks", action="append", default=[], metavar="DATASET=K1,K2",
                        help="the two K of a data set's table (default per paper 5.1.2: 5,20; "
                             "electronics 10,50), e.g. --ks ml-100k=3,20")
    parser.add_argument("--digits", type=int, default=3, help="decimals of the result tables")
    parser.add_argument("--export-scores", action="store_true",
                        help="first load every seed run's checkpoint and write its per-example "
                             "scores to EXPERIMENT/exports (Fig. 6, noise-detection table)")
    parser.add_argument("--no-dataset-table", action="store_true",
                        help="skip Table 1 (it loads every data set)")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        parser.error(f"unknown format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    ks = {}
    for item in args.ks:
        name, sep, values = item.partition("=")
        try:
            k1, k2 = (int(v) for v in values.split(","))
        except ValueError:
            parser.error(f"--ks {item!r}: expected DATASET=K1,K2 such as ml-100k=3,20")
        ks[name] = (k1, k2)
    try:
        report = build_report(args.experiment, args.out, formats, split=args.split,
                              interpretability=args.interpretability, scores=args.scores,
                              data_root=args.data_root, dataset_table=not args.no_dataset_table,
                              ks=ks, digits=args.digits, export=args.export_scores)
    except ExperimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{len(report.tables)} tables, {len(report.figures)} figures in {report.out_dir}")
    for path in (report.markdown, report.html):
        if path is not None:
            print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
