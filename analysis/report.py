"""The report of one experiment folder: tables (Markdown, LaTeX, CSV, HTML) and figures (PNG).

Layout of the output folder (default ``<experiment>/report``)::

    report.md  report.html          # the whole report; the HTML embeds its figures
    tables/<name>.{md,tex,csv}      # every table on its own (CSV: the tidy numbers)
    figures/<name>.png              # every figure on its own

Works on finished, partial and resumed experiments: a run-status table says which families
have how many seeds and failed trials, and every table cell marks missing seeds.

Marks in the result tables (:data:`MARKS`): bold = best mean of the column; ``*`` = the paper's
rule (the best denoising result beats the best baseline by more than 5%); ``†`` / ``‡`` = above /
below Normal of the same block and column in Welch's t-test over the seeds, Holm-corrected over
the table's tests (the differences, their 95% intervals and the p-values are in
``tables/table*.csv``). A star without a dagger is a gain the seeds do not support.

With published numbers (the default), ``paper_<table>`` sets ours beside the paper's and the
authors' code's numbers cell by cell (:mod:`analysis.published`) and ``claims_<table>`` checks
each of the paper's starred cells on our seeds (:mod:`analysis.claims`).
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis import claims
from analysis import figures as figs
from analysis import noise_detection
from analysis import published as pub
from analysis import run_cost
from analysis import tables as tabs
from analysis.experiment import FAILED_STATUSES, GROUP_KEYS, Experiment, load_experiment

FORMATS = ("md", "tex", "csv", "html")
#: how the report explains the marks of its result tables
MARKS = (f"Bold: the best mean of a column. `*`: the best denoising result beats the best baseline by "
         f"more than {tabs.STAR_THRESHOLD:.0%} (the paper's rule). `†` / `‡`: significantly above / "
         f"below Normal of the same block and column (Welch's t-test over the seeds, Holm-corrected "
         f"over the table's tests, family-wise error {tabs.SIGNIFICANCE_LEVEL:g}; the difference, its "
         f"{tabs.CI_LEVEL:.0%} interval and the p-values are in the tables' CSV files); a `*` without "
         "`†` is a gain the spread over seeds does not support. Each caption says how large a "
         "difference its seeds can mark at all.")
#: file-name patterns of exports found inside an experiment folder
INTERPRETABILITY_GLOB = "*interpretab*.csv"
SCORES_GLOB = "*clean_scores*.csv"


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    out_dir: Path
    tables: list[tabs.Table] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: data sets with labels given as noisy: what was known and what was skipped
    label_notes: list[str] = field(default_factory=list)

    @property
    def markdown(self) -> Path | None:
        return next((p for p in self.files if p.name == "report.md"), None)

    @property
    def html(self) -> Path | None:
        return next((p for p in self.files if p.name == "report.html"), None)


def status_table(exp: Experiment) -> tabs.Table:
    """Per run family: search trials (finished / failed) and seed runs (finished / planned)."""
    groups = exp.groups()
    records = []
    expected = exp.n_expected_seeds
    trials = exp.search_trials
    runs = exp.seed_runs
    usable = exp.usable_runs()
    keys = [k for k in GROUP_KEYS + ("noise_rate", "h_backbone") if k in groups]
    for rec in groups.to_dict("records"):
        label = " / ".join(f"noise {float(rec[k]):.0%}" if k == "noise_rate" else f"h = {rec[k]}"
                           if k == "h_backbone" else str(rec[k])
                           for k in keys if rec.get(k) is not None and not pd.isna(rec.get(k)))

        def match(frame: pd.DataFrame) -> pd.DataFrame:
            if frame.empty:
                return frame
            mask = np.ones(len(frame), dtype=bool)
            for k in keys:
                if k in frame and rec.get(k) is not None and not pd.isna(rec.get(k)):
                    mask &= (frame[k].astype(str) == str(rec[k])).to_numpy()
            return frame[mask]

        t = match(trials)
        failed = int(t["status"].fillna("").str.lower().isin(FAILED_STATUSES).sum()) if "status" in t else 0
        done = usable.index.intersection(match(runs).index)
        n_done = int(runs.loc[done, "seed"].nunique()) if len(done) else 0
        seeds = f"{n_done}/{max(expected, n_done)}" if expected or n_done else "0"
        for col, value in (("search trials", len(t)), ("failed trials", failed),
                           ("seed runs finished", seeds),
                           ("state", "complete" if expected and n_done >= expected else "incomplete")):
            records.append({"block": "", "row": label, "column": col, "value": value})
    data = pd.DataFrame(records, columns=["block", "row", "column", "value"])
    return tabs.Table(name="run_status", caption="State of every run family of the experiment.",
                      data=data, rows=list(dict.fromkeys(data["row"])),
                      columns=["search trials", "failed trials", "seed runs finished", "state"],
                      row_header="dataset / backbone / method")


def _find_exports(root: Path, pattern: str, skip: Path) -> list[Path]:
    return sorted(p for p in root.rglob(pattern) if skip not in p.parents)


def build_report(experiment: str | Path, out_dir: str | Path | None = None,
                 formats: Sequence[str] = FORMATS, split: str = "test_clean",
                 interpretability: Iterable[str | Path] = (), scores: Iterable[str | Path] = (),
                 dataset_stats: dict[str, dict] | None = None, dataset_table: bool = True,
                 ks: dict[str, tuple[int, int]] | None = None, digits: int = 3,
                 published: bool | str | Path = True) -> Report:
    """Write the report of ``experiment`` into ``out_dir`` and return what was written.

    Everything comes from the experiment folder: Table 1 from the data statistics the search
    recorded in ``manifest.json`` (``dataset_stats`` adds or replaces entries: the command line
    loads them for a data set the manifest lacks), Fig. 6 and the noise-detection tables from
    the score exports (``deca_tune.exports`` writes them: ``report --export-scores``).
    ``published``: put ours beside the paper's and the authors' code's numbers
    (:mod:`analysis.published`; True: the bundled file, a path: another file, False: not)."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    exp = load_experiment(experiment)
    out = Path(out_dir) if out_dir else exp.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir=out, warnings=list(exp.warnings))

    interp = list(interpretability) or _find_exports(exp.root, INTERPRETABILITY_GLOB, out)
    score_files = list(scores) or _find_exports(exp.root, SCORES_GLOB, out)

    report.label_notes = tabs.clean_label_notes(exp)
    report.tables = [status_table(exp)]
    cost = run_cost.run_cost_table(exp)
    if cost is not None:
        report.tables.append(cost)
    report.tables += tabs.all_tables(exp, split=split, dataset_stats=dataset_stats,
                                     with_dataset_table=dataset_table, ks=ks)
    if split == "test_clean" and published is not False:  # the paper reports the clean test
        reference = pub.load_published(None if published is True else published)  # read once
        ours = list(report.tables)
        report.tables += pub.comparison_tables(ours, reference)
        report.tables += claims.claims_tables(ours, reference)
    report.tables += noise_detection.run_table(exp)
    # per-run exports of deca_tune.exports are in the run table above; list other files per file
    own = exp.root / "exports"
    exported = noise_detection.export_table(
        [p for p in list(interp) + list(score_files) if Path(p).parent != own])
    if exported is not None:
        report.tables.append(exported)

    for table in report.tables:
        table.digits = digits
    report.figures = figs.all_figures(exp, out / "figures", split=split, interpretability=interp)

    table_formats = [f for f in formats if f in ("md", "tex", "csv")]
    for table in report.tables:
        report.files += table.write(out / "tables", table_formats)
    if "tex" in formats:
        path = out / "tables.tex"
        path.write_text("% requires \\usepackage{booktabs}\n" +
                        "\n".join(t.to_latex() for t in report.tables))
        report.files.append(path)
    if "md" in formats:
        path = out / "report.md"
        path.write_text(_markdown(exp, report))
        report.files.append(path)
    if "html" in formats:
        path = out / "report.html"
        path.write_text(_html(exp, report))
        report.files.append(path)
    return report


def _header_lines(exp: Experiment) -> list[str]:
    m = exp.manifest if isinstance(exp.manifest, dict) else {}
    lines = [f"Experiment folder: `{exp.root}`",
             f"Report written: {_dt.datetime.now().isoformat(timespec='seconds')}"]
    for key, label in (("command", "Command"), ("created", "Experiment created"), ("seeds", "Seeds")):
        if key in m:
            value = " ".join(map(str, m[key])) if isinstance(m[key], list) else m[key]
            lines.append(f"{label}: `{value}`")
    git = m.get("git")
    if isinstance(git, dict) and git.get("commit"):
        lines.append(f"Git commit: `{git['commit']}`" + (" (uncommitted changes)" if git.get("dirty") else ""))
    if m.get("resumes"):
        lines.append(f"Resumed {len(m['resumes'])} time(s)")
    lines.append(f"Seed runs: {len(exp.seed_runs)} rows; search trials: {len(exp.search_trials)}; "
                 f"planned seeds per family: {exp.n_expected_seeds or 'unknown'}")
    return lines


def _markdown(exp: Experiment, report: Report) -> str:
    parts = [f"# Report: {exp.root.name}", ""] + [f"- {l}" for l in _header_lines(exp)] + [""]
    if report.warnings:
        parts += ["## Warnings", ""] + [f"- {w}" for w in report.warnings] + [""]
    if report.label_notes:
        parts += ["## Labels given as noisy", ""] + [f"- {n}" for n in report.label_notes] + [""]
    parts += ["## Tables", "", "Cells: mean ± sample std over the seeds that finished; "
              "`(n/N seeds)` marks a cell with fewer seeds than planned, `missing` one with none.", "",
              MARKS, ""]
    for table in report.tables:
        parts += [table.to_markdown(), ""]
    parts += ["## Figures", ""]
    for path in report.figures:
        rel = path.relative_to(report.out_dir)
        parts += [f"### {path.stem}", "", f"![{path.stem}]({rel.as_posix()})", ""]
    if not report.figures:
        parts += ["No figures: the experiment has no curves, trials or exports yet.", ""]
    return "\n".join(parts)


_CSS = """body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}
table.result-table{border-collapse:collapse;margin:0.5em 0;font-size:0.9em}
table.result-table td,table.result-table th{border-top:1px solid #ccc;padding:2px 8px;text-align:right}
table.result-table th{text-align:left}ul.notes{font-size:0.85em;color:#555}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}"""


def _html(exp: Experiment, report: Report) -> str:
    esc = html.escape
    body = [f"<h1>Report: {esc(exp.root.name)}</h1><ul>"]
    body += [f"<li>{esc(l.replace('`', ''))}</li>" for l in _header_lines(exp)] + ["</ul>"]
    if report.warnings:
        body += ["<h2>Warnings</h2><ul>"] + [f"<li>{esc(w)}</li>" for w in report.warnings] + ["</ul>"]
    if report.label_notes:
        body += ["<h2>Labels given as noisy</h2><ul>"] + [f"<li>{esc(n)}</li>" for n in report.label_notes] + ["</ul>"]
    body += ["<h2>Tables</h2><p>Cells: mean ± sample std over the seeds that finished; "
             "(n/N seeds) marks a cell with fewer seeds than planned, missing one with none.</p>",
             f"<p>{esc(MARKS.replace('`', ''))}</p>"]
    body += [t.to_html() for t in report.tables]
    body += ["<h2>Figures</h2>"]
    for path in report.figures:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        body += [f"<h3>{esc(path.stem)}</h3>",
                 f"<img alt='{esc(path.stem)}' src='data:image/png;base64,{data}'>"]
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>Report: {esc(exp.root.name)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
