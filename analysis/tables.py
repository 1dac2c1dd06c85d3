"""The paper's tables (1-6) from an experiment folder, as Markdown, LaTeX (booktabs), HTML, CSV.

Every cell is the mean +- sample standard deviation (ddof=1) over the seeds that finished. A
cell with fewer seeds than planned says so ("0.095 ± 0.002 (2/3 seeds)"); a family with none
says "missing (0/3 seeds)". Nothing is averaged over fewer seeds without saying so.

Rules (paper Tables 2-5): the best mean per column of a block is bold; in Tables 2/3 a ``*``
marks the best denoising result of a column when it beats the best baseline by more than 5%
(relative): the paper's rule, which ignores the spread over seeds. Significance (Tables 2/3, 4
and 6): every method is compared with Normal of the same block and column by Welch's t-test
over the seeds; the p-values of a table are Holm-corrected together (family-wise error 0.05),
and ``†`` / ``‡`` mark a method significantly above / below Normal. The CSV has per cell the
difference from Normal, its 95% interval (Welch), ``p_value`` and ``p_holm``; the caption says
how large a difference the table's seeds and number of tests can mark at all
(:func:`power_note`). 0.181 ± 0.018 against 0.164 ± 0.002 (3 seeds each) is 10% better, so it
gets the star, but p = 0.24 before any correction, so no dagger.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.experiment import GROUP_KEYS, Experiment

#: display names, in the paper's order (unknown methods keep their name and go last)
METHOD_NAMES: dict[str, str] = {
    "normal": "Normal", "wbpr": "WBPR", "tce": "T-CE", "rce": "R-CE", "ensemble": "Ensemble",
    "mwnet": "MW-Net", "itlm": "ITLM",
    "deca": "DeCA", "deca_p": "DeCA(p)",
    "deca-dp": "DeCA-DP", "deca-dn": "DeCA-DN", "deca_p-dp": "DeCA(p)-DP", "deca_p-dn": "DeCA(p)-DN",
}
BACKBONE_NAMES: dict[str, str] = {
    "mf": "MF", "gmf": "GMF", "neumf": "NeuMF", "cdae": "CDAE", "lightgcn": "LightGCN",
    "resnet32": "ResNet-32", "resnet-32": "ResNet-32", "convnet": "ConvNet", "mlp": "MLP",
    "inception": "InceptionNet", "inceptionnet": "InceptionNet",
}
DATASET_NAMES: dict[str, str] = {
    "ml-100k": "MovieLens-100K", "ml-100k-paper": "MovieLens-100K (authors' split)",
    "modcloth": "Modcloth", "modcloth-paper": "Modcloth (authors' split)", "adressa": "Adressa",
    "electronics": "Electronics", "fashion-mnist": "Fashion-MNIST", "mnist": "MNIST",
    "cifar10": "CIFAR-10",
}
#: the methods the star rule compares (paper Tables 2/3)
BASELINES: tuple[str, ...] = ("normal", "wbpr", "tce", "rce", "ensemble")
DENOISING: tuple[str, ...] = ("deca", "deca_p", "deca-dp", "deca-dn", "deca_p-dp", "deca_p-dn")
ABLATION_ROWS: tuple[str, ...] = ("deca-dp", "deca-dn", "deca", "deca_p-dp", "deca_p-dn", "deca_p")
#: the two K of each data set (paper 5.1.2; Table 2's MovieLens columns are R@3, R@20 on the
#: authors' split); other data sets use DEFAULT_KS
DATASET_KS: dict[str, tuple[int, int]] = {
    "ml-100k": (5, 20), "ml-100k-paper": (3, 20), "modcloth": (5, 20), "modcloth-paper": (5, 20),
    "adressa": (5, 20), "electronics": (10, 50),
}
DEFAULT_KS: tuple[int, int] = (5, 20)
#: the h model DeCA uses when the spec does not name one (Table 6)
DEFAULT_H_BACKBONE = "mf"
STAR_THRESHOLD = 0.05
#: family-wise level of the significance marks (†/‡), Holm-corrected over a table's tests
SIGNIFICANCE_LEVEL = 0.05
#: level of the confidence interval of a difference (the CSV's ci_low, ci_high)
CI_LEVEL = 0.95
#: every method is tested against this one (per block and column)
REFERENCE_METHOD = "normal"

_ORDER = list(METHOD_NAMES)
_BACKBONE_ORDER = list(BACKBONE_NAMES)


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def backbone_name(backbone: str) -> str:
    return BACKBONE_NAMES.get(backbone.lower(), backbone)


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


def _sorted(values: Iterable[str], order: Sequence[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    return sorted(values, key=lambda v: (order.index(v) if v in order else len(order), v))


# ---------------------------------------------------------------------------- cell formatting
def format_cell(mean: float, std: float, n: int, expected: int, *, digits: int = 3,
                percent: bool = False, bold: bool = False, star: bool = False,
                style: str = "md", sig: bool | int = False) -> str:
    """One table cell: ``mean ± std``, bold/star/dagger marks, and the seed count when incomplete.

    ``style`` is ``md``, ``tex``, ``html`` or ``plain``; ``sig``: True or +1 -> ``†``
    (significantly above the reference), -1 -> ``‡`` (below).
    """
    seeds = f" ({n}/{expected} seeds)" if expected and n < expected else ""
    if n == 0 or mean is None or not math.isfinite(mean):
        return f"missing{seeds}" if seeds else "missing"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    dig = max(digits - 1, 0) if percent else digits
    pm = {"tex": " $\\pm$ "}.get(style, " ± ")
    pct = ("\\%" if style == "tex" else unit) if percent else ""
    text = f"{mean * scale:.{dig}f}"
    if n > 1 and std is not None and math.isfinite(std):
        text += f"{pm}{std * scale:.{dig}f}"
    text += pct
    if bold:
        text = {"md": f"**{text}**", "tex": f"\\textbf{{{text}}}",
                "html": f"<b>{text}</b>"}.get(style, text)
    if star:
        text += {"md": "\\*", "tex": "$^{*}$", "plain": " *"}.get(style, "*")
    if sig is True or (sig and sig > 0):
        text += {"tex": "$^{\\dagger}$", "plain": " †"}.get(style, "†")
    elif sig:
        text += {"tex": "$^{\\ddagger}$", "plain": " ‡"}.get(style, "‡")
    return text + seeds


# ---------------------------------------------------------------------------- Welch's t-test
def _beta_continued_fraction(a: float, b: float, x: float, max_iter: int = 300,
                             eps: float = 1e-15) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0) or not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc needs a, b > 0 and 0 <= x <= 1, got a={a}, b={b}, x={x}")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` (real, > 0) degrees of freedom."""
    if not df > 0 or math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    return min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))


def welch_t_test(mean1: float, std1: float, n1: int, mean2: float, std2: float,
                 n2: int) -> tuple[float, float, float]:
    """(t, Welch-Satterthwaite degrees of freedom, two-sided p) of the difference of two means,
    from their sample means, sample standard deviations (ddof=1) and sizes; NaN when either
    side has fewer than 2 values or both have no spread."""
    nan = (math.nan, math.nan, math.nan)
    if n1 < 2 or n2 < 2 or not all(math.isfinite(v) for v in (mean1, std1, mean2, std2)):
        return nan
    v1, v2 = std1 * std1 / n1, std2 * std2 / n2
    if v1 + v2 <= 0:
        return nan
    t = (mean1 - mean2) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
    return t, df, student_t_two_sided(t, df)


# ---------------------------------------------------------------------------- aggregation
def _key_frame(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """``frame`` with every key column present and typed alike (strings; noise rate float)."""
    frame = frame.copy()
    for k in keys:
        if k not in frame:
            frame[k] = pd.NA
        frame[k] = (pd.to_numeric(frame[k], errors="coerce") if k == "noise_rate"
                    else frame[k].astype("string"))
    return frame


def aggregate(exp: Experiment, metrics: Sequence[str], keys: Sequence[str] = GROUP_KEYS,
              groups: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tidy mean/std over seeds: one row per (keys, metric) with
    ``mean std n expected seeds failed``.

    Failed runs (status) and non-finite values are not counted (``failed`` lists the seeds that
    have a row but no usable value); ``groups`` (default: every planned family of the experiment)
    adds rows with ``n = 0`` for families without results. ``expected`` is the planned number of
    seeds (at least the number found).
    """
    keys = list(keys)
    cols = keys + ["metric", "mean", "std", "n", "seeds", "failed"]
    raw = exp.seed_runs
    metrics = list(dict.fromkeys(metrics))
    present = [m for m in metrics if m in raw.columns]
    out = pd.DataFrame(columns=cols)
    if not raw.empty and present:
        runs = _key_frame(raw, keys).drop_duplicates(subset=keys + ["seed"], keep="last")
        usable = runs.index.isin(exp.usable_runs().index)
        long = runs.melt(id_vars=keys + ["seed"], value_vars=present, var_name="metric")
        long["value"] = pd.to_numeric(long["value"], errors="coerce")
        long["ok"] = np.tile(usable, len(present)) & np.isfinite(long["value"].to_numpy(float))

        def seeds(s: pd.Series) -> str:
            return ",".join(str(int(x)) for x in sorted(s.dropna()))

        grouped = long.groupby(keys + ["metric"], dropna=False)
        good = long[long["ok"]].groupby(keys + ["metric"], dropna=False)
        out = pd.concat([
            good["value"].agg(mean="mean", std=lambda v: v.std(ddof=1), n="size"),
            good["seed"].agg(seeds=seeds),
            grouped.apply(lambda g: seeds(g.loc[~g["ok"], "seed"]), include_groups=False).rename("failed"),
        ], axis=1).reset_index()
    if groups is None:
        groups = exp.groups()
    grid = _key_frame(groups, keys)[keys].drop_duplicates().merge(
        pd.DataFrame({"metric": list(metrics)}), how="cross")
    out = grid.merge(_key_frame(out, keys), on=keys + ["metric"], how="outer")
    out["n"] = out["n"].fillna(0).astype(int)
    out["mean"] = pd.to_numeric(out["mean"], errors="coerce").astype(float)
    out["std"] = pd.to_numeric(out["std"], errors="coerce").astype(float)
    out["expected"] = np.maximum(out["n"].to_numpy(), exp.n_expected_seeds)
    out["seeds"] = out["seeds"].fillna("")
    out["failed"] = out["failed"].fillna("")
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------- the table object
@dataclass
class Table:
    """A formatted table: tidy numbers (``data``) plus the layout to render them.

    ``data`` has one row per cell with columns ``block``, ``row``, ``column`` and either
    ``mean std n expected bold star`` (result tables) or ``value`` (plain tables).
    """

    name: str
    caption: str
    data: pd.DataFrame
    rows: list[str]
    columns: list[str]
    blocks: list[str] = field(default_factory=lambda: [""])
    row_header: str = "Method"
    percent: bool = False
    digits: int = 3
    notes: list[str] = field(default_factory=list)

    def _cell(self, rec: pd.Series | None, style: str) -> str:
        if rec is None:
            return ""
        if "mean" not in rec.index:  # a plain table (Table 1)
            value = rec["value"]
            if isinstance(value, (float, np.floating)) and not float(value).is_integer():
                return f"{value:.5f}"
            if isinstance(value, (int, float, np.integer, np.floating)) and pd.notna(value):
                return f"{int(value):,}"
            return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
        sig = rec.get("sig", False)
        mark = (int(rec.get("sig_direction", 1)) or 1) if bool(sig) and not pd.isna(sig) else 0
        return format_cell(rec["mean"], rec["std"], int(rec["n"]), int(rec["expected"]),
                           digits=self.digits, percent=self.percent, bold=bool(rec["bold"]),
                           star=bool(rec["star"]), style=style, sig=mark)

    def display(self, style: str = "plain") -> pd.DataFrame:
        """Wide frame of formatted cells; index (block, row) when there are several blocks."""
        lookup = {(r.block, r.row, r.column): r for r in
                  (pd.Series(x) for x in self.data.to_dict("records"))} if not self.data.empty else {}
        records = []
        index = []
        for block in self.blocks:
            for row in self.rows:
                cells = [lookup.get((block, row, col)) for col in self.columns]
                if all(c is None for c in cells):
                    continue
                records.append([self._cell(c, style) for c in cells])
                index.append((block, row))
        if self.blocks == [""]:
            idx = pd.Index([r for _, r in index], name=self.row_header)
        else:
            idx = pd.MultiIndex.from_tuples(index, names=["", self.row_header])
        return pd.DataFrame(records, index=idx, columns=list(self.columns))

    # -------------------------------------------------------------- renderers
    def to_markdown(self) -> str:
        frame = self.display("md")
        esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
        lines = [f"**{self.name}**: {self.caption}", ""]
        lines.append("| " + " | ".join([self.row_header] + [esc(c) for c in self.columns]) + " |")
        lines.append("|" + "---|" * (len(self.columns) + 1))
        last_block = None
        for key, values in zip(frame.index, frame.to_numpy().tolist()):
            block, row = key if isinstance(key, tuple) else ("", key)
            if block != last_block and block:
                lines.append(f"| *{esc(block)}* |" + " |" * len(self.columns))
            last_block = block
            lines.append("| " + " | ".join([esc(row)] + [esc(v) for v in values]) + " |")
        lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def to_latex(self) -> str:
        frame = self.display("tex")
        frame.index = frame.index.map(
            (lambda t: tuple(_tex_escape(x) for x in t)) if isinstance(frame.index, pd.MultiIndex)
            else _tex_escape)
        frame.columns = [_tex_escape(c) for c in frame.columns]
        frame.index.names = [None] * frame.index.nlevels
        caption = _tex_escape(self.caption).replace("±", "$\\pm$")
        body = frame.to_latex(escape=False, multirow=False, caption=caption,
                              label=f"tab:{self.name}", position="t")
        notes = "".join(f"% {n}\n" for n in self.notes)
        return notes + body

    def to_html(self) -> str:
        frame = self.display("html")
        html = frame.to_html(escape=False, border=0, classes="result-table")
        notes = "".join(f"<li>{_html_escape(n)}</li>" for n in self.notes)
        return (f"<h3>{_html_escape(self.name)}</h3><p>{_html_escape(self.caption)}</p>{html}"
                + (f"<ul class='notes'>{notes}</ul>" if notes else ""))

    def to_csv(self, path: str | Path) -> Path:
        """The tidy numbers behind the table (one row per cell), not the formatted strings."""
        path = Path(path)
        frame = self.data.copy()
        frame.insert(0, "table", self.name)
        frame.to_csv(path, index=False)
        return path

    def write(self, out_dir: str | Path, formats: Iterable[str] = ("md", "tex", "csv")) -> list[Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for fmt in formats:
            path = out_dir / f"{self.name}.{fmt}"
            if fmt == "csv":
                self.to_csv(path)
            elif fmt == "md":
                path.write_text(self.to_markdown())
            elif fmt == "tex":
                path.write_text(self.to_latex())
            elif fmt == "html":
                path.write_text(self.to_html())
            else:
                raise ValueError(f"unknown table format {fmt!r}; choose from md, tex, csv, html")
            paths.append(path)
        return paths


def in_layout_order(frame: pd.DataFrame, table: Table, row_labels: Sequence[str]) -> pd.DataFrame:
    """``frame`` (one record per cell of ``table``, with ``block`` and ``column``) sorted as
    ``table`` lays them out: blocks, then rows (``row_labels``: each record's row of ``table``),
    then columns; what ``table`` lacks goes last, in its order."""
    rank = {name: i for i, name in enumerate(table.blocks)}
    rows = {name: i for i, name in enumerate(table.rows)}
    cols = {name: i for i, name in enumerate(table.columns)}
    order = [(rank.get(b, len(rank)), rows.get(r, len(rows)), cols.get(c, len(cols)))
             for b, r, c in zip(frame["block"], row_labels, frame["column"])]
    positions = sorted(range(len(frame)), key=lambda i: order[i])
    return frame.iloc[positions].reset_index(drop=True)


def _tex_escape(text: Any) -> str:
    text = str(text)
    for a, b in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"),
                 ("#", "\\#"), ("$", "\\$")):
        text = text.replace(a, b)
    return text


def _html_escape(text: Any) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------------------- marking rules
def mark_best(data: pd.DataFrame, within: Sequence[str] = ("block", "column")) -> pd.DataFrame:
    """``bold`` = the highest mean among cells with results, per ``within`` group (ties: all)."""
    data = data.copy()
    best = data.groupby(list(within), dropna=False)["mean"].transform("max")
    data["bold"] = (data["n"] > 0) & np.isclose(data["mean"], best, rtol=0, atol=1e-12)
    return data


def mark_star(data: pd.DataFrame, baselines: Sequence[str] = BASELINES,
              denoising: Sequence[str] = DENOISING,
              threshold: float = STAR_THRESHOLD) -> pd.DataFrame:
    """``star`` on the best denoising cell of a (block, column) that beats the best baseline
    by more than ``threshold`` (relative): (best_denoising - best_baseline) / best_baseline."""
    data = data.copy()
    data["star"] = False
    for _, cell in data[data["n"] > 0].groupby(["block", "column"], dropna=False):
        base = cell[cell["method"].isin(baselines)]["mean"]
        den = cell[cell["method"].isin(denoising)]["mean"]
        if base.empty or den.empty or not base.max() > 0:
            continue
        if (den.max() - base.max()) / base.max() > threshold:
            winners = cell.index[cell["method"].isin(denoising)
                                 & np.isclose(cell["mean"], den.max(), rtol=0, atol=1e-12)]
            data.loc[winners, "star"] = True
    return data


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile (0.5 <= q < 1) of Student's t with ``df`` degrees of freedom (bisection
    on :func:`student_t_two_sided`)."""
    if not 0.5 <= q < 1 or not df > 0:
        raise ValueError(f"t_quantile needs 0.5 <= q < 1 and df > 0, got q={q}, df={df}")
    target = 2.0 * (1.0 - q)
    lo, hi = 0.0, 1.0
    while student_t_two_sided(hi, df) > target:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_two_sided(mid, df) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def welch_interval(mean1: float, std1: float, n1: int, mean2: float, std2: float, n2: int,
                   level: float = 0.95) -> tuple[float, float]:
    """The ``level`` confidence interval of ``mean1 - mean2`` (Welch: Satterthwaite degrees of
    freedom); NaN where :func:`welch_t_test` is NaN."""
    _, df, _ = welch_t_test(mean1, std1, n1, mean2, std2, n2)
    if not math.isfinite(df):
        return math.nan, math.nan
    half = t_quantile(0.5 + level / 2.0, df) * math.sqrt(std1 * std1 / n1 + std2 * std2 / n2)
    diff = mean1 - mean2
    return diff - half, diff + half


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error over the finite ones; NaN stays NaN):
    the i-th smallest of m becomes max_{j <= i} min(1, (m - j + 1) p_(j))."""
    idx = [i for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    order = sorted(idx, key=lambda i: p_values[i])
    out = [math.nan] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p_values[i]))
        out[i] = running
    return out


def smallest_markable(n: int, m: int, level: float = SIGNIFICANCE_LEVEL) -> tuple[float, float]:
    """The smallest difference, in units of the per-seed std (equal on both sides), that Welch's
    test with ``n`` seeds a side can mark: at Holm's first step (p < level / m) and at its last
    (p < level); a true difference of that size is marked about half the time."""
    df = 2 * n - 2
    scale = math.sqrt(2.0 / n)
    return (t_quantile(1 - level / (2 * max(m, 1)), df) * scale, t_quantile(1 - level / 2, df) * scale)


def chi2_cdf_even(x: float, df: int) -> float:
    """P(chi^2_df <= x) for an even ``df`` (closed form: 1 - e^(-x/2) sum_{j<df/2} (x/2)^j / j!)."""
    if df <= 0 or df % 2:
        raise ValueError(f"chi2_cdf_even needs an even df > 0, got {df}")
    half = x / 2.0
    term, total = 1.0, 1.0
    for j in range(1, df // 2):
        term *= half / j
        total += term
    return 1.0 - math.exp(-half) * total


def std_interval_factor(n: int, level: float = 0.95) -> tuple[float, float] | None:
    """(low, high): the ``level`` interval of the true std is [low s, high s] for a sample std
    ``s`` of ``n`` values (normal data); None when ``n - 1`` is odd (no closed form here)."""
    df = n - 1
    if df <= 0 or df % 2:
        return None

    def quantile(q: float) -> float:
        lo, hi = 0.0, 1.0
        while chi2_cdf_even(hi, df) < q:
            hi *= 2.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if chi2_cdf_even(mid, df) < q else (lo, mid)
        return 0.5 * (lo + hi)

    tail = (1.0 - level) / 2.0
    return math.sqrt(df / quantile(1 - tail)), math.sqrt(df / quantile(tail))


def power_note(m: int, seeds: Sequence[int] = (3, 5), level: float = SIGNIFICANCE_LEVEL) -> str:
    """What ``seeds`` seeds per cell can and cannot show in a table of ``m`` tests (the caption)."""
    parts = []
    for n in seeds:
        first, last = smallest_markable(n, m, level)
        factor = std_interval_factor(n)
        spread = (f"; its std itself is known only to within {factor[0]:.2f}-{factor[1]:.1f}x "
                  "(95%)" if factor else "")
        parts.append(f"{n} seeds: a difference is marked only beyond about {first:.1f} seed std "
                     f"(the first Holm step) to {last:.1f} (the last){spread}")
    return (f"With {m} tests in this table: " + "; ".join(parts) + ". So these seeds can show "
            "large, consistent differences; an unmarked cell is not evidence of no difference, and "
            "a difference of about one seed std cannot be decided either way.")


def mark_significance(data: pd.DataFrame, reference: str = REFERENCE_METHOD,
                      level: float = SIGNIFICANCE_LEVEL, ci_level: float = CI_LEVEL) -> pd.DataFrame:
    """Every method against ``reference`` (Normal) in the same (block, column): Welch's t-test
    over the seeds, ``diff`` = method - reference, its ``ci_level`` interval (``ci_low``,
    ``ci_high``), ``p_value`` (two-sided), ``p_holm`` (Holm-adjusted over every test of the
    table: all blocks and columns), ``sig`` (p_holm < ``level``) and ``sig_direction`` (+1: the
    method is higher, -1: lower, 0: not significant). Cells with fewer than 2 seeds on either
    side are not tested (NaN)."""
    data = data.copy()
    for col in ("diff", "ci_low", "ci_high", "p_value", "p_holm"):
        data[col] = math.nan
    data["reference"] = pd.Series([pd.NA] * len(data), index=data.index, dtype="object")
    data["sig"] = False
    data["sig_direction"] = 0
    if "method" not in data:
        return data
    tested = []
    for _, cell in data[data["n"] > 0].groupby(["block", "column"], dropna=False):
        ref = cell[cell["method"] == reference]
        if ref.empty:
            continue
        ref = ref.iloc[0]
        for idx, rec in cell[cell["method"] != reference].iterrows():
            args = (rec["mean"], rec["std"], int(rec["n"]), ref["mean"], ref["std"], int(ref["n"]))
            data.at[idx, "reference"] = reference
            data.at[idx, "diff"] = rec["mean"] - ref["mean"]
            _, _, p = welch_t_test(*args)
            data.at[idx, "p_value"] = p
            data.at[idx, "ci_low"], data.at[idx, "ci_high"] = welch_interval(*args, level=ci_level)
            if math.isfinite(p):
                tested.append(idx)
    for idx, adj in zip(tested, holm([data.at[i, "p_value"] for i in tested])):
        data.at[idx, "p_holm"] = adj
        if adj < level:
            data.at[idx, "sig"] = True
            data.at[idx, "sig_direction"] = 1 if data.at[idx, "diff"] > 0 else -1
    return data


def significance_caption(data: pd.DataFrame, reference: str = REFERENCE_METHOD) -> str:
    """The caption sentence of the †/‡ marks, with the table's number of tests and its power."""
    m = int(data["p_value"].notna().sum()) if "p_value" in data else 0
    return (f"†/‡: significantly above/below {method_name(reference)} of the same block and column "
            f"(Welch's t-test over seeds, Holm-corrected over the table's {m} tests, family-wise "
            f"error {SIGNIFICANCE_LEVEL:g}; diff, {CI_LEVEL:.0%} interval ci_low..ci_high, p_value "
            f"and p_holm in the CSV). " + (power_note(m) if m else "No cell had 2 seeds on both sides."))


# ---------------------------------------------------------------------------- metrics per data set
KsOverride = dict[str, tuple[int, int]]


def rec_metrics(exp: Experiment, dataset: str, split: str = "test_clean",
                ks: KsOverride | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """Columns of Tables 2/3 for ``dataset``: [(label, metric column)], plus notes.

    Uses the paper's two K (:data:`DATASET_KS`); if the runs lack one, the nearest K they
    have is used and a note says so.
    """
    wanted = tuple((ks or {}).get(dataset) or DATASET_KS.get(dataset, DEFAULT_KS))
    have: set[int] = set()
    for col in exp.seed_runs.columns:
        if isinstance(col, str) and col.startswith(f"{split}/recall@"):
            try:
                have.add(int(col.rsplit("@", 1)[1]))
            except ValueError:
                pass
    ks, notes = list(wanted), []
    if have and not set(wanted) <= have:
        ks = []
        for k in wanted:
            left = have - set(ks)
            if left:  # the K itself, else the nearest K the runs have (each K once)
                ks.append(k if k in left else min(left, key=lambda h: (abs(h - k), h)))
        notes.append(f"the runs have no {split} metrics at K = {', '.join(str(k) for k in wanted if k not in have)}; "
                     f"showing K = {', '.join(map(str, ks))} instead")
    cols = [(f"R@{k}", f"{split}/recall@{k}") for k in ks] + [(f"N@{k}", f"{split}/ndcg@{k}") for k in ks]
    return cols, notes


def _missing_notes(data: pd.DataFrame, label: Callable[[pd.Series], str]) -> list[str]:
    notes = []
    incomplete = data[data["n"] < data["expected"]].drop_duplicates(subset=["block", "row"])
    for _, rec in incomplete.iterrows():
        have = f"seeds {rec['seeds']}" if rec["seeds"] else "no seeds"
        failed = f"; failed: seed {rec['failed']}" if rec.get("failed") else ""
        notes.append(f"{label(rec)}: {int(rec['n'])}/{int(rec['expected'])} seeds finished "
                     f"({have}{failed})")
    return notes


def _block_table(name: str, caption: str, agg: pd.DataFrame,
                 columns: list[tuple[str, str]], row_of: Callable[[pd.Series], str],
                 rows_order: list[str], **kwargs: Any) -> Table:
    colmap = {metric: label for label, metric in columns}
    data = agg[agg["metric"].isin(colmap)].copy()
    data["block"] = data["backbone"].map(backbone_name)
    data["row"] = data.apply(row_of, axis=1) if not data.empty else pd.Series(dtype=str)
    data["column"] = data["metric"].map(colmap)
    blocks = [backbone_name(b) for b in _sorted(data["backbone"].dropna().unique(), _BACKBONE_ORDER)]
    rows = [r for r in rows_order if r in set(data["row"])]
    rows += [r for r in dict.fromkeys(data["row"]) if r not in rows]
    return Table(name=name, caption=caption, data=data.reset_index(drop=True), rows=rows,
                 columns=[label for label, _ in columns], blocks=blocks or [""], **kwargs)


def _default_h(agg: pd.DataFrame) -> pd.DataFrame:
    """Drop the Table-6 variants (a non-default h model) from the main tables."""
    if "h_backbone" not in agg:
        return agg
    h = agg["h_backbone"].astype("string").str.lower()
    return agg[h.isna() | (h == DEFAULT_H_BACKBONE)]


# ---------------------------------------------------------------------------- Tables 2/3
def performance_tables(exp: Experiment, split: str = "test_clean",
                       ks: KsOverride | None = None) -> list[Table]:
    """Tables 2/3 layout: one table per recommendation data set, a block per backbone."""
    tables = []
    for dataset in exp.datasets("rec"):
        columns, notes = rec_metrics(exp, dataset, split, ks)
        keys = list(GROUP_KEYS) + (["h_backbone"] if "h_backbone" in exp.seed_runs else [])
        groups = exp.groups()
        agg = _default_h(aggregate(exp, [m for _, m in columns], keys=keys, groups=groups))
        agg = agg[agg["dataset"] == dataset]
        table = _block_table(
            f"table2_{dataset}",
            f"{dataset_name(dataset)}: {split} Recall/NDCG, mean ± std over seeds "
            "(Tables 2/3 layout). Bold: best per column; *: best denoising result beats the best "
            f"baseline by more than {STAR_THRESHOLD:.0%} (the paper's rule).",
            agg, columns, lambda r: method_name(r["method"]), [method_name(m) for m in _ORDER],
            notes=notes)
        table.data = mark_significance(mark_star(mark_best(table.data)))
        table.caption += " " + significance_caption(table.data)
        table.notes += _missing_notes(table.data, lambda r: f"{r['block']} / {r['row']}")
        tables.append(table)
    return tables


# ---------------------------------------------------------------------------- Table 4
def given_labels(exp: Experiment) -> dict[str, dict]:
    """Image data sets of ``exp`` whose labels are given as noisy (``image-folder``,
    ``image-csv``, ``noisy_labels``): their recorded statistics (``labels: given``)."""
    return {d: st for d, st in recorded_stats(exp).items() if st.get("labels") == "given"}


#: what a run on given labels computes only where clean labels are known
NEEDS_CLEAN = (("clean_test", "clean test accuracy (test_clean/accuracy, the Table 4 layout)"),
               ("clean_valid", "clean validation accuracy (valid_clean/accuracy) and the paper protocol"),
               ("clean_train", "noise-detection AUC / precision and memorisation (train_noisy/memorised)"))


def clean_label_notes(exp: Experiment) -> list[str]:
    """One line per data set with given labels: how many clean labels are known and which
    numbers were skipped because they need clean labels."""
    notes = []
    for dataset, st in given_labels(exp).items():
        known = ", ".join(f"{part.split('_')[1]} {st.get(part, 0)}/{st.get('n_' + part.split('_')[1], '?')}"
                          for part, _ in NEEDS_CLEAN)
        skipped = [what for part, what in NEEDS_CLEAN if not st.get(part)]
        line = (f"{dataset_name(dataset)}: labels as given (noisy; selection on the noisy validation "
                f"split); clean labels known for {known}.")
        if st.get("test_labels") == "given":
            line += " test/accuracy is the accuracy on the test labels as given (noisy)."
        line += (f" Skipped (they need clean labels): {'; '.join(skipped)}." if skipped
                 else " Clean metrics are computed over the images with a known clean label.")
        notes.append(line)
    return notes


def image_tables(exp: Experiment, split: str = "test_clean") -> list[Table]:
    """Table 4 layout: rows = methods, columns = noise rates, a block per backbone. A data set
    with given labels has a column per injected noise rate on top of them ("given labels" for
    none), and a second table of the accuracy on its test labels as given (``test/accuracy``);
    a table whose metric no run computed (no clean labels) is left out (see
    :func:`clean_label_notes`)."""
    tables = []
    given = given_labels(exp)
    for dataset in exp.datasets("image"):
        metrics = [f"{split}/accuracy"]
        if dataset in given and split != "test":
            metrics.append("test/accuracy")
        for metric in metrics:
            table = _image_table(exp, dataset, metric, dataset in given)
            if table is not None:
                tables.append(table)
    return tables


def _image_table(exp: Experiment, dataset: str, metric: str, given: bool) -> Table | None:
    keys = list(GROUP_KEYS) + ["noise_rate"]
    agg = aggregate(exp, [metric], keys=keys)
    agg = agg[agg["dataset"] == dataset].copy()
    if given and not (agg["n"] > 0).any():
        return None  # e.g. no clean labels: nothing to show (the report says why)

    def label(r: float) -> str:
        if pd.isna(r):
            return "noise ?"
        if given:
            return "given labels" if r == 0 else f"given + {r:.0%}"
        return f"{r:.0%}"

    rates = sorted(r for r in agg["noise_rate"].dropna().unique())
    agg["column"] = agg["noise_rate"].map(label)
    # a family known only from a folder name has no noise rate: show it under every rate
    # (with no finished run at all, it stays under "noise ?")
    if rates:
        placeholder = agg["noise_rate"].isna() & (agg["n"] == 0)
        unknown, agg = agg[placeholder], agg[~placeholder]
        known = set(zip(agg["backbone"], agg["method"]))
        unknown = unknown[[(b, m) not in known for b, m in zip(unknown["backbone"], unknown["method"])]]
        agg = pd.concat([agg] + [unknown.assign(noise_rate=r, column=label(r)) for r in rates],
                        ignore_index=True)
    columns = [label(r) for r in rates] + (["noise ?"] if agg["noise_rate"].isna().any() else [])
    data = agg.copy()
    data["block"] = data["backbone"].map(backbone_name)
    data["row"] = data["method"].map(method_name)
    blocks = [backbone_name(b) for b in _sorted(data["backbone"].dropna().unique(), _BACKBONE_ORDER)]
    rows = _sorted(data["row"].unique(), [method_name(m) for m in
                                           ("normal", "mwnet", "itlm", "deca_p") + tuple(_ORDER)])
    split = metric.split("/")[0]
    if given and split == "test":
        name, what = f"table4_{dataset}_given_labels", "accuracy on the test labels as given (noisy)"
    elif given:
        name, what = f"table4_{dataset}", f"{split} accuracy (images with a known clean label)"
    else:
        name, what = f"table4_{dataset}", f"{split} accuracy by noise rate"
    table = Table(name=name,
                  caption=f"{dataset_name(dataset)}: {what}, mean ± std over seeds (Table 4 layout). "
                          "Bold: best per column.",
                  data=mark_significance(mark_best(data.reset_index(drop=True)).assign(star=False)),
                  rows=rows, columns=columns, blocks=blocks or [""], percent=True, digits=3)
    table.caption += " " + significance_caption(table.data)
    table.notes += _missing_notes(table.data, lambda r: f"{r['block']} / {r['row']} / {r['column']}")
    return table


# ---------------------------------------------------------------------------- Table 5
def ablation_tables(exp: Experiment, split: str = "test_clean",
                    ks: KsOverride | None = None) -> list[Table]:
    """Table 5: DP/DN ablations next to full DeCA / DeCA(p), when the experiment has them."""
    tables = []
    groups = exp.groups()
    for dataset in exp.datasets("rec"):
        methods = set(groups.loc[groups["dataset"] == dataset, "method"])
        if not methods & {"deca-dp", "deca-dn", "deca_p-dp", "deca_p-dn"}:
            continue
        columns, notes = rec_metrics(exp, dataset, split, ks)
        keys = list(GROUP_KEYS) + (["h_backbone"] if "h_backbone" in exp.seed_runs else [])
        agg = _default_h(aggregate(exp, [m for _, m in columns], keys=keys))
        agg = agg[(agg["dataset"] == dataset) & agg["method"].isin(ABLATION_ROWS)].copy()
        agg["family"] = agg["method"].str.split("-").str[0]
        table = _block_table(
            f"table5_{dataset}",
            f"{dataset_name(dataset)}: one sub-task only (DP or DN) against full DeCA / DeCA(p), "
            f"{split}, mean ± std over seeds (Table 5). Bold: best per column within each family.",
            agg, columns, lambda r: method_name(r["method"]), [method_name(m) for m in ABLATION_ROWS],
            notes=notes)
        table.data = mark_best(table.data, within=("block", "column", "family")).assign(star=False)
        table.notes += _missing_notes(table.data, lambda r: f"{r['block']} / {r['row']}")
        tables.append(table)
    return tables


# ---------------------------------------------------------------------------- Table 6
def h_model_tables(exp: Experiment, split: str = "test_clean",
                   ks: KsOverride | None = None) -> list[Table]:
    """Table 6: the choice of the noise models h, h' (spec key ``h_backbone``), when varied."""
    runs = exp.seed_runs
    if runs.empty or "h_backbone" not in runs or runs["h_backbone"].dropna().empty:
        return []
    tables = []
    for dataset in exp.datasets("rec"):
        sub = runs[(runs["dataset"] == dataset) & runs["method"].isin(("deca", "deca_p"))]
        if sub["h_backbone"].fillna(DEFAULT_H_BACKBONE).str.lower().nunique() < 2:
            continue  # one choice of h only: nothing to compare
        columns, notes = rec_metrics(exp, dataset, split, ks)
        agg = aggregate(exp, [m for _, m in columns], keys=list(GROUP_KEYS) + ["h_backbone"],
                        groups=runs[list(GROUP_KEYS) + ["h_backbone"]])
        agg = agg[(agg["dataset"] == dataset) & agg["method"].isin(("normal", "deca", "deca_p"))].copy()
        is_deca = agg["method"] != "normal"
        agg.loc[is_deca, "h_backbone"] = agg.loc[is_deca, "h_backbone"].fillna(DEFAULT_H_BACKBONE)

        def row_of(r: pd.Series) -> str:
            if r["method"] == "normal":
                return "Normal"
            return f"{method_name(r['method'])} (h, h' = {backbone_name(str(r['h_backbone']))})"

        order = ["Normal"] + [f"{method_name(m)} (h, h' = {backbone_name(h)})"
                              for m in ("deca", "deca_p") for h in ("mf", "gmf", "neumf", "cdae", "lightgcn")]
        table = _block_table(
            f"table6_{dataset}",
            f"{dataset_name(dataset)}: effect of the noise model h, h' (spec key h_backbone), "
            f"{split}, mean ± std over seeds (Table 6). Bold: best per column.",
            agg, columns, row_of, order, notes=notes)
        table.data = mark_best(table.data).assign(star=False)
        table.data = mark_significance(table.data)  # each h choice is its own row
        table.caption += " " + significance_caption(table.data)
        table.notes += _missing_notes(table.data, lambda r: f"{r['block']} / {r['row']}")
        tables.append(table)
    return tables


# ---------------------------------------------------------------------------- Table 1
def recorded_stats(exp: Experiment) -> dict[str, dict]:
    """The data statistics the search recorded in ``manifest.json`` (per data set)."""
    recorded = exp.manifest.get("data", {}) if isinstance(exp.manifest, dict) else {}
    return {name: entry["stats"] for name, entry in (recorded or {}).items()
            if isinstance(entry, dict) and isinstance(entry.get("stats"), dict)}


def dataset_table(datasets: Sequence[str], stats: dict[str, dict]) -> Table:
    """Table 1: statistics of each recommendation data set (``RecSplit.stats``)."""
    columns = ["# Users", "# Items", "# Interactions", "Sparsity", "# Train", "# Valid", "# Test",
               "# Clean valid", "# Clean test"]
    keys = ["users", "items", "interactions", "sparsity", "train", "valid", "test",
            "valid_clean", "test_clean"]
    records, notes = [], []
    for dataset in datasets:
        if dataset not in stats:
            notes.append(f"{dataset}: statistics unavailable (not in the manifest; "
                         f"python -m deca_tune.data describe {dataset} prints them)")
            continue
        for col, key in zip(columns, keys):
            records.append({"block": "", "row": dataset_name(dataset), "column": col,
                            "dataset": dataset, "value": stats[dataset].get(key)})
    data = pd.DataFrame(records, columns=["block", "row", "column", "dataset", "value"])
    return Table(name="table1_datasets", caption="Statistics of the data sets (Table 1).",
                 data=data, rows=list(dict.fromkeys(data["row"])), columns=columns,
                 row_header="Dataset", notes=notes)


def all_tables(exp: Experiment, split: str = "test_clean", dataset_stats: dict[str, dict] | None = None,
               with_dataset_table: bool = True, ks: KsOverride | None = None) -> list[Table]:
    """Every table the experiment supports, in the paper's order (``dataset_stats``: Table 1
    statistics beyond those recorded in the manifest)."""
    tables: list[Table] = []
    rec = exp.datasets("rec")
    if with_dataset_table and rec:
        tables.append(dataset_table(rec, {**recorded_stats(exp), **(dataset_stats or {})}))
    tables += performance_tables(exp, split, ks)
    tables += image_tables(exp, split)
    tables += ablation_tables(exp, split, ks)
    tables += h_model_tables(exp, split, ks)
    return tables
