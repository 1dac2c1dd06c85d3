"""``python -m deca_tune.report EXPERIMENT_DIR [--out DIR] [--formats md,tex,csv,html]``.

A thin entry point: the tables and figures are built by :mod:`analysis.report`, which reads the
experiment folder only. What needs models or data happens here first: ``--export-scores``
writes the per-run score exports (:mod:`deca_tune.exports`), and Table 1 statistics missing from
the manifest are loaded (``deca_tune.data.load_split``).
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from analysis.experiment import ExperimentError, load_experiment
from analysis.published import PublishedError
from analysis.report import FORMATS, build_report
from analysis.tables import recorded_stats


def missing_stats(experiment: str, data_root: str | None) -> tuple[dict[str, dict], list[str]]:
    """Table 1 statistics of the experiment's recommendation data sets the manifest lacks."""
    from deca_tune.data import load_split

    exp = load_experiment(experiment)
    have = recorded_stats(exp)
    units = exp.manifest.get("units") if isinstance(exp.manifest, dict) else None
    if data_root is None and units:  # where the search found the data
        data_root = (units[0].get("spec") or {}).get("data_root")
    stats, warnings = {}, []
    for name in exp.datasets("rec"):
        if name in have:
            continue
        try:
            stats[name] = load_split("rec", {"dataset": name, "data_root": data_root}).stats()
        except Exception as exc:  # noqa: BLE001 - the report goes on; the table notes the gap
            warnings.append(f"{name}: statistics unavailable ({type(exc).__name__}: {exc})")
    return stats, warnings


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
    parser.add_argument("--published", default=None, metavar="CSV",
                        help="the published numbers to put ours beside (default: the paper's Tables "
                             "2-6 and the authors' code, analysis/published/deca_paper.csv)")
    parser.add_argument("--no-published", action="store_true",
                        help="no comparison with the published numbers")
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
        load_experiment(args.experiment)  # fail early on a folder that is not an experiment
        if args.export_scores:
            from deca_tune.exports import export_scores

            export_scores(args.experiment, data_root=args.data_root)
        stats, warnings = ({}, []) if args.no_dataset_table else missing_stats(args.experiment, args.data_root)
        report = build_report(args.experiment, args.out, formats, split=args.split,
                              interpretability=args.interpretability, scores=args.scores,
                              dataset_stats=stats, dataset_table=not args.no_dataset_table,
                              ks=ks, digits=args.digits,
                              published=False if args.no_published else (args.published or True))
    except (ExperimentError, PublishedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in warnings + report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{len(report.tables)} tables, {len(report.figures)} figures in {report.out_dir}")
    for path in (report.markdown, report.html):
        if path is not None:
            print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
