"""Published numbers beside ours: the paper's Tables 2-6 and the DeCA authors' code's numbers.

The numbers live in one data file, ``analysis/published/deca_paper.csv`` (transcribed from the
paper; ``tests/test_published.py`` checks every cell against the paper's text), one row per
cell and source:

=============  ==============================================================================
column         meaning
=============  ==============================================================================
source         ``paper`` (the published table) or ``authors_code`` (the authors' public code
               run on this project's machine by ``python -m deca_tune.bench fidelity``,
               docs/benchmarks-fidelity.md)
table          the paper's table number (2-6)
paper_dataset  the paper's data set name (MovieLens, Modcloth, Adressa, Electronics, CIFAR10,
               FMNIST)
datasets       the project's data sets the cell stands for, space-separated (the paper's
               MovieLens cells: ``ml-100k-paper`` (the authors' split, like for like) and
               ``ml-100k``; the authors' code: only the split it ran on)
paper_block    the paper's block (a backbone; empty in Table 6)
backbone       the project's backbone (``gmf`` ...; Table 6: ``gmf``, inferred: its Normal row
               is Table 2's Modcloth GMF Normal)
paper_row      the paper's row (Normal, DeCA(p), DeCA-DP, ``DeCA (h, h' = GMF)`` ...)
method         the project's method (``normal``, ``deca_p``, ``deca-dp`` ...)
h_backbone     Table 6's noise models h, h' (empty elsewhere: the default MF)
paper_column   the paper's column (R@20, N@5, 10% ...)
metric         the project's metric (``test_clean/recall@20``, ``test_clean/accuracy``)
noise_rate     Table 4's noise rate (0.1 ... 0.5)
value, std     the number and its reported standard deviation (empty where the paper gives
               none: Tables 5, 6); accuracies as fractions (89.01% -> 0.8901)
n              seeds behind the number (the paper: 3, "all experiments are run 3 times",
               section 5.1.2; Tables 5/6 do not say)
bold, star     the paper's marks (best of the column; > 5% over the best baseline)
note           where a row needs one
=============  ==============================================================================

:func:`compare` puts a table of ours beside them, cell by cell.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analysis.tables import Table, in_layout_order

PUBLISHED_FILE = Path(__file__).with_name("published") / "deca_paper.csv"
COLUMNS = ("source", "table", "paper_dataset", "datasets", "paper_block", "backbone", "paper_row",
           "method", "h_backbone", "paper_column", "metric", "noise_rate", "value", "std", "n",
           "bold", "star", "note")
SOURCES = ("paper", "authors_code")

#: the paper's names -> the project's
PAPER_DATASETS: dict[str, tuple[str, ...]] = {
    "MovieLens": ("ml-100k-paper", "ml-100k"), "Modcloth": ("modcloth-paper", "modcloth"),
    "Adressa": ("adressa",), "Electronics": ("electronics",), "CIFAR10": ("cifar10",),
    "FMNIST": ("fashion-mnist",),
}
PAPER_BACKBONES: dict[str, str] = {"GMF": "gmf", "NeuMF": "neumf", "CDAE": "cdae",
                                   "LightGCN": "lightgcn", "ResNet-32": "resnet32", "MF": "mf"}
PAPER_METHODS: dict[str, str] = {
    "Normal": "normal", "WBPR": "wbpr", "T-CE": "tce", "Ensemble": "ensemble", "DeCA": "deca",
    "DeCA(p)": "deca_p", "MW-Net": "mwnet", "ITLM": "itlm", "DeCA-DP": "deca-dp",
    "DeCA-DN": "deca-dn", "DeCA(p)-DP": "deca_p-dp", "DeCA(p)-DN": "deca_p-dn",
}


class PublishedError(ValueError):
    """The published-numbers file is malformed (the message names the file and line)."""


def paper_metric(column: str, split: str = "test_clean") -> str:
    """The project's metric of a paper column: ``R@20`` -> ``test_clean/recall@20``, ``N@5`` ->
    ``test_clean/ndcg@5``, a noise rate (``10%``) -> ``test_clean/accuracy``."""
    if column.startswith("R@"):
        return f"{split}/recall@{int(column[2:])}"
    if column.startswith("N@"):
        return f"{split}/ndcg@{int(column[2:])}"
    if column.endswith("%"):
        return f"{split}/accuracy"
    raise ValueError(f"unknown paper column {column!r}")


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """The published numbers (one row per cell and source), checked: known columns and sources,
    numeric values, no cell twice. Errors name the file and the line."""
    path = Path(path) if path else PUBLISHED_FILE
    if not path.is_file():
        raise PublishedError(f"{path}: published-numbers file not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise PublishedError(f"{path}: missing column(s) {', '.join(missing)}")
    for i, rec in enumerate(frame.to_dict("records")):
        line = i + 2  # the header is line 1
        if rec["source"] not in SOURCES:
            raise PublishedError(f"{path}, line {line}: source {rec['source']!r}; choose from {', '.join(SOURCES)}")
        for key in ("value", "std", "n", "noise_rate", "table"):
            if rec[key] != "":
                try:
                    float(rec[key])
                except ValueError:
                    raise PublishedError(f"{path}, line {line}: {key} {rec[key]!r} is not a number") from None
        if rec["value"] == "":
            raise PublishedError(f"{path}, line {line}: no value")
    out = frame.copy()
    # one unit of the last printed digit: "0.095" -> 0.001 (the paper rounds to it)
    out["resolution"] = [10.0 ** -len(v.partition(".")[2]) for v in frame["value"]]
    for key in ("value", "std", "noise_rate"):
        out[key] = pd.to_numeric(out[key].replace("", None), errors="coerce").astype(float)
    out["n"] = pd.to_numeric(out["n"].replace("", None), errors="coerce").astype("Int64")
    out["table"] = out["table"].astype(int)
    for key in ("bold", "star"):
        out[key] = out[key].str.lower().isin(("true", "1", "yes"))
    keys = ["source", "table", "paper_dataset", "paper_block", "paper_row", "paper_column"]
    dup = out.duplicated(subset=keys, keep="first")
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        first = next(j for j in range(i) if out.loc[j, keys].equals(out.loc[i, keys]))
        raise PublishedError(f"{path}, line {i + 2}: the same cell twice, as line {first + 2} "
                             f"({', '.join(keys)})")
    return out


def for_dataset(published: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The rows that stand for the project's data set ``dataset``."""
    mask = published["datasets"].str.split().map(lambda names: dataset in names)
    return published[mask.astype(bool)]




# ---------------------------------------------------------------------------- ours beside them
#: our table's name prefix -> the paper's tables it stands for
TABLE_KINDS: dict[str, tuple[int, ...]] = {"table2_": (2, 3), "table4_": (4,), "table5_": (5,),
                                           "table6_": (6,)}
VERDICTS = ("reproduced", "not reproduced", "not comparable")


def _h_key(value: object) -> str:
    text = "" if value is None else str(value).strip().lower()
    return "" if text in ("", "nan", "<na>", "none") else text


def _rate_key(value: object) -> float | None:
    try:
        rate = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return round(rate, 6) if math.isfinite(rate) else None


def _cell_key(backbone: object, method: object, metric: object, h: object, rate: object,
              with_h: bool) -> tuple:
    h_key = _h_key(h) if with_h and method != "normal" else ""
    return (str(backbone).lower(), str(method), str(metric), h_key, _rate_key(rate))


class ComparisonTable(Table):
    """Ours beside the published numbers; ``data`` has one row per cell (block, row) with
    numeric columns, rendered as paper | authors' code | ours | ours - paper | verdict."""

    def display(self, style: str = "plain") -> pd.DataFrame:
        digits = max(self.digits + 1, 4)
        pm = " $\\pm$ " if style == "tex" else " ± "

        def num(mean: float, std: float = math.nan, n: object = None, dig: int = digits) -> str:
            if mean is None or not math.isfinite(mean):
                return "-"
            text = f"{mean:.{dig}f}"
            if std is not None and math.isfinite(std):
                text += f"{pm}{std:.{dig}f}"
            if n is not None and not pd.isna(n):
                text += f" (n={int(n)})"
            return text

        records, index = [], []
        for rec in self.data.to_dict("records"):
            diff = rec["diff"]
            rel = rec["rel_diff"]
            diff_text = "-" if not math.isfinite(diff) else (
                f"{diff:+.{digits}f}" + (f" ({rel:+.0%})" if math.isfinite(rel) else ""))
            paper_digits = (round(-math.log10(rec["paper_resolution"]))
                            if math.isfinite(rec["paper_resolution"]) else digits)
            records.append([num(rec["paper"], rec["paper_std"], dig=paper_digits),
                            num(rec["authors"], rec["authors_std"], rec["authors_n"]),
                            num(rec["ours_mean"], rec["ours_std"], rec["ours_n"]),
                            diff_text, rec["verdict"]])
            index.append((rec["block"], rec["row"]))
        if self.blocks == [""]:
            idx = pd.Index([r for _, r in index], name=self.row_header)
        else:
            idx = pd.MultiIndex.from_tuples(index, names=["", self.row_header])
        return pd.DataFrame(records, index=idx, columns=list(self.columns))


def _lookup(published: pd.DataFrame, dataset: str, tables: tuple[int, ...], source: str,
            with_h: bool) -> dict[tuple, dict]:
    rows = for_dataset(published, dataset)
    rows = rows[(rows["source"] == source) & rows["table"].isin(tables)]
    return {_cell_key(r["backbone"], r["method"], r["metric"], r["h_backbone"], r["noise_rate"], with_h): r
            for r in rows.to_dict("records")}


def compare(table: Table, published: pd.DataFrame | None = None) -> ComparisonTable | None:
    """``table`` (one of ours: ``table2_*``, ``table4_*``, ``table5_*``, ``table6_*``) cell by
    cell beside the paper and the authors' code; None when the paper has no such table or data
    set. A cell is *reproduced* when ``|ours - paper| <= paper's std + ours + half a unit of the
    paper's last printed digit``, *not comparable* when ours has fewer than 2 seeds (no std) or
    the paper has no such cell."""
    kind = next((tabs for prefix, tabs in TABLE_KINDS.items() if table.name.startswith(prefix)), None)
    data = table.data
    if kind is None or data.empty or "mean" not in data:
        return None
    published = load_published() if published is None else published
    with_h = kind == (6,)
    datasets = list(dict.fromkeys(data["dataset"].dropna().astype(str)))
    records, notes, found = [], [], False
    for dataset in datasets:
        paper = _lookup(published, dataset, kind, "paper", with_h)
        authors = _lookup(published, dataset, kind, "authors_code", with_h)
        found = found or bool(paper)
        like = for_dataset(published, dataset)["datasets"].str.split().str[0]
        if paper and len(like) and dataset not in set(like):
            notes.append(f"{dataset}: the paper's numbers come from the authors' split "
                         f"({like.iloc[0]}); on {dataset} they are indicative only")
        sub = data[data["dataset"].astype(str) == dataset]
        for rec in sub.to_dict("records"):
            key = _cell_key(rec.get("backbone"), rec.get("method"), rec.get("metric"),
                            rec.get("h_backbone"), rec.get("noise_rate"), with_h)
            p, a = paper.get(key), authors.get(key)
            n = int(rec.get("n") or 0)
            mean, std = float(rec["mean"]), float(rec["std"])
            out = {"block": rec["block"], "row": f"{rec['row']} {rec['column']}", "dataset": dataset,
                   "backbone": rec.get("backbone"), "method": rec.get("method"),
                   "metric": rec.get("metric"), "column": rec["column"],
                   "paper_table": int(p["table"]) if p else pd.NA,
                   "paper": p["value"] if p else math.nan, "paper_std": p["std"] if p else math.nan,
                   "paper_resolution": p["resolution"] if p else math.nan,
                   "authors": a["value"] if a else math.nan, "authors_std": a["std"] if a else math.nan,
                   "authors_n": a["n"] if a else pd.NA,
                   "ours_mean": mean, "ours_std": std, "ours_n": n}
            if p is None:
                verdict, diff, tol = "not comparable: not in the paper", math.nan, math.nan
            elif n < 2 or not math.isfinite(std):
                verdict, diff, tol = f"not comparable: {n} seed{'s' if n != 1 else ''} of ours", math.nan, math.nan
                if n == 1:
                    diff = mean - p["value"]
            else:
                diff = mean - p["value"]
                paper_std = p["std"] if math.isfinite(p["std"]) else 0.0
                tol = paper_std + std + p["resolution"] / 2.0
                verdict = "reproduced" if abs(diff) <= tol + 1e-12 else "not reproduced"
            out.update(diff=diff, rel_diff=diff / p["value"] if p and p["value"] else math.nan,
                       tolerance=tol, verdict=verdict)
            records.append(out)
    if not found:
        return None
    frame = pd.DataFrame(records)
    frame = in_layout_order(frame, table, [r[:-len(c) - 1] for r, c in zip(frame["row"], frame["column"])])
    counts = {v: int(frame["verdict"].str.startswith(v).sum()) for v in VERDICTS}
    paper_tables = ("Tables " if len(kind) > 1 else "Table ") + "/".join(str(t) for t in kind)
    caption = (f"{table.name} beside the paper's {paper_tables} and, where the fidelity bench "
               "ran them, the DeCA authors' public code on this machine (docs/benchmarks-fidelity.md; "
               "n = their seeds). Reproduced: |ours - paper| <= the paper's std + ours + half a unit "
               "of the paper's last digit" + (" (the paper gives no std in this table)"
                                              if kind in ((5,), (6,)) else "")
               + f". {counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced, "
               f"{counts['not comparable']} not comparable (of {len(frame)} cells).")
    return ComparisonTable(name=f"paper_{table.name}", caption=caption, data=frame,
                           rows=list(dict.fromkeys(frame["row"])),
                           columns=["paper", "authors' code", "ours", "ours - paper", "verdict"],
                           blocks=list(dict.fromkeys(frame["block"])) or [""],
                           row_header="method / column", notes=notes)


def comparison_tables(tables: list[Table], published: pd.DataFrame | None = None) -> list[Table]:
    """:func:`compare` for every table of ours the paper has, plus one count table (per table:
    reproduced / not reproduced / not comparable), as the fidelity doc counts its cells."""
    published = load_published() if published is None else published
    out = [c for c in (compare(t, published) for t in tables) if c is not None]
    if not out:
        return []
    records = []
    for table in out:
        verdicts = table.data["verdict"]
        for v in VERDICTS:
            records.append({"block": "", "row": table.name, "column": v,
                            "value": int(verdicts.str.startswith(v).sum())})
        records.append({"block": "", "row": table.name, "column": "cells", "value": len(verdicts)})
    counts = Table(name="paper_comparison_counts",
                   caption="Cells of ours against the paper, per table (reproduced: within the "
                           "paper's std + ours).",
                   data=pd.DataFrame(records), rows=[t.name for t in out],
                   columns=list(VERDICTS) + ["cells"], row_header="table")
    return out + [counts]
