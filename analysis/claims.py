"""The paper's claims checked on ours: does each starred cell of Tables 2/3 hold?

The paper stars a cell where DeCA or DeCA(p) beats the best baseline of its block and column by
more than 5% (section 5.2). Such a cell is a claim about an *ordering*, which a level
comparison (:func:`analysis.published.compare`: ours within the paper's std) does not check.
For every starred cell of the paper on a data set of ours, :func:`check_claims` asks the same
question of our seeds:

- the baselines are the ones the paper's block has (like for like: a baseline of ours the paper
  did not run, such as R-CE, is not part of the claim; a note names it where it is higher), and
  our best of them is the one with the highest mean;
- ``gain`` = (ours - our best baseline) / our best baseline, as the paper's rule;
- Welch's t-test of the method against that baseline over the seeds, Holm-corrected over the
  table's claims (choosing the best baseline by its mean first makes the test conservative);
- verdict, the first that applies: *not comparable* (fewer than 2 seeds either side, or no
  baseline of ours), *holds* (gain > 5% and significant), *gain > 5%, not significant*,
  *gain 0-5%* (right order, below the paper's threshold; ``significant`` added where the test
  says so), *does not hold* (ours at or below the best baseline; ``significantly below`` added
  where the test says so).
"""
from __future__ import annotations

import math

import pandas as pd

from analysis import tables as tabs
from analysis.published import for_dataset, load_published

CLAIM_VERDICTS = ("holds", "gain > 5%, not significant", "gain 0-5%", "does not hold",
                  "not comparable")
#: our table's name prefix -> the paper's tables whose stars it can check
CLAIM_TABLES: dict[str, tuple[int, ...]] = {"table2_": (2, 3)}


class ClaimsTable(tabs.Table):
    """One row per starred paper cell; ``data`` holds the numbers, rendered as paper gain |
    ours gain | p (Holm) | verdict."""

    def display(self, style: str = "plain") -> pd.DataFrame:
        def side(value: float, base: str, base_value: float, gain: float) -> str:
            if not (math.isfinite(value) and math.isfinite(base_value)):
                return "-"
            return (f"{value:.{digits}f} vs {tabs.method_name(base)} {base_value:.{digits}f} "
                    f"({gain:+.1%})")

        digits = max(self.digits + 1, 4)
        records, index = [], []
        for rec in self.data.to_dict("records"):
            p = rec["p_holm"]
            records.append([side(rec["paper"], rec["paper_baseline"], rec["paper_baseline_value"],
                                 rec["paper_gain"]),
                            side(rec["ours"], rec["ours_baseline"], rec["ours_baseline_value"],
                                 rec["ours_gain"]),
                            "-" if not math.isfinite(p) else f"{p:.3g}", rec["verdict"]])
            index.append((rec["block"], rec["row"]))
        idx = pd.MultiIndex.from_tuples(index, names=["", self.row_header]) if index else \
            pd.Index([], name=self.row_header)
        return pd.DataFrame(records, index=idx, columns=list(self.columns))


def _verdict(gain: float, p_holm: float, threshold: float, level: float) -> str:
    if not math.isfinite(gain):
        return "not comparable"
    significant = math.isfinite(p_holm) and p_holm < level
    if gain > threshold:
        return "holds" if significant else "gain > 5%, not significant"
    if gain > 0:
        return "gain 0-5%" + (" (significant)" if significant else "")
    return "does not hold" + (" (significantly below)" if significant else "")


def check_claims(table: tabs.Table, published: pd.DataFrame | None = None,
                 threshold: float = tabs.STAR_THRESHOLD,
                 level: float = tabs.SIGNIFICANCE_LEVEL) -> ClaimsTable | None:
    """The paper's starred cells of ``table`` (one of ours: ``table2_<dataset>``) checked on our
    seeds (module docstring), in the blocks (backbones) ``table`` has results for; None when
    the paper stars nothing there."""
    kind = next((t for prefix, t in CLAIM_TABLES.items() if table.name.startswith(prefix)), None)
    data = table.data
    if kind is None or data.empty or "mean" not in data:
        return None
    published = load_published() if published is None else published
    records, notes = [], []
    for dataset in dict.fromkeys(data["dataset"].dropna().astype(str)):
        paper = for_dataset(published, dataset)
        paper = paper[(paper["source"] == "paper") & paper["table"].isin(kind)]
        ours = data[(data["dataset"].astype(str) == dataset) & (data["n"] > 0)]
        present = set(ours["backbone"].astype(str))
        for star in paper[paper["star"]].to_dict("records"):
            backbone, metric = star["backbone"], star["metric"]
            if backbone not in present:  # a block of the paper this experiment did not run
                continue
            cell = paper[(paper["backbone"] == backbone) & (paper["metric"] == metric)]
            base = cell[cell["method"].isin(tabs.BASELINES)]
            if base.empty:
                continue
            pbest = base.loc[base["value"].idxmax()]
            mine = ours[(ours["backbone"] == backbone) & (ours["metric"] == metric)]
            m = mine[mine["method"] == star["method"]]
            b = mine[mine["method"].isin(list(base["method"]))]
            rec = {"block": tabs.backbone_name(backbone), "dataset": dataset, "backbone": backbone,
                   "method": star["method"], "metric": metric, "column": star["paper_column"],
                   "row": f"{tabs.method_name(star['method'])} {star['paper_column']}",
                   "paper": star["value"], "paper_baseline": pbest["method"],
                   "paper_baseline_value": pbest["value"],
                   "paper_gain": (star["value"] - pbest["value"]) / pbest["value"],
                   "ours": math.nan, "ours_std": math.nan, "ours_n": 0,
                   "ours_baseline": "", "ours_baseline_value": math.nan,
                   "ours_baseline_std": math.nan, "ours_baseline_n": 0,
                   "ours_gain": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                   "p_value": math.nan}
            if not m.empty and not b.empty:
                m, ob = m.iloc[0], b.loc[b["mean"].idxmax()]
                args = (float(m["mean"]), float(m["std"]), int(m["n"]),
                        float(ob["mean"]), float(ob["std"]), int(ob["n"]))
                _, _, p = tabs.welch_t_test(*args)
                lo, hi = tabs.welch_interval(*args)
                rec.update(ours=args[0], ours_std=args[1], ours_n=args[2],
                           ours_baseline=ob["method"], ours_baseline_value=args[3],
                           ours_baseline_std=args[4], ours_baseline_n=args[5],
                           ci_low=lo, ci_high=hi, p_value=p,
                           ours_gain=((args[0] - args[3]) / args[3] if args[3] > 0 and math.isfinite(p)
                                      else math.nan))
                extra = mine[~mine["method"].isin(list(base["method"]) + list(tabs.DENOISING))]
                if not extra.empty and extra["mean"].max() > args[3]:
                    top = extra.loc[extra["mean"].idxmax()]
                    notes.append(f"{rec['block']} / {rec['row']}: {tabs.method_name(top['method'])} "
                                 f"(not in the paper's block) is higher still, {top['mean']:.4f}")
            records.append(rec)
    if not records:
        return None
    frame = pd.DataFrame(records)
    frame = tabs.in_layout_order(frame, table, [tabs.method_name(m) for m in frame["method"]])
    for rec in frame.to_dict("records"):
        if not rec["paper_gain"] > threshold:
            notes.append(f"{rec['block']} / {rec['row']}: the paper stars this cell, but by its own "
                         f"numbers the gain is {rec['paper_gain']:+.1%}")
    frame["p_holm"] = tabs.holm(list(frame["p_value"]))
    frame["verdict"] = [_verdict(g, p, threshold, level)
                        for g, p in zip(frame["ours_gain"], frame["p_holm"])]
    counts = {v: int(frame["verdict"].str.startswith(v).sum()) for v in CLAIM_VERDICTS}
    n_tests = int(frame["p_value"].notna().sum())
    caption = (f"The paper's starred cells of {table.name} (its claims: DeCA / DeCA(p) more than "
               f"{threshold:.0%} above the best baseline of the paper's block) checked on ours: our "
               "best of the same baselines, the gain, Welch's t-test over the seeds Holm-corrected "
               f"over the {n_tests} claims tested (family-wise error {level:g}; the interval of the "
               "difference is in the CSV). "
               + ", ".join(f"{counts[v]} {v}" for v in CLAIM_VERDICTS)
               + f" (of {len(frame)} starred cells).")
    return ClaimsTable(name=f"claims_{table.name}", caption=caption, data=frame,
                       rows=list(dict.fromkeys(frame["row"])),
                       columns=["paper: starred vs best baseline", "ours: same vs our best of those baselines",
                                "p (Holm)", "verdict"],
                       blocks=list(dict.fromkeys(frame["block"])),
                       row_header="method / column", notes=notes)


def claims_tables(tables: list[tabs.Table], published: pd.DataFrame | None = None) -> list[tabs.Table]:
    """:func:`check_claims` for every table of ours whose paper table has stars."""
    published = load_published() if published is None else published
    return [c for c in (check_claims(t, published) for t in tables) if c is not None]
