"""The paper's figures as PNG files (matplotlib, Agg; no pyplot global state).

- Fig. 3 :func:`learning_curves`: clean-test metric per epoch, mean line and a +-std band over seeds.
- Fig. 4/5 :func:`sensitivity_heatmaps`: validation metric over the two DeCA constants
  (rec: C0, C1; image: C1, C2) from grid or Optuna trials, binned on a log scale when continuous.
- Fig. 6 :func:`rating_probability`: mean "real positive" probability per rating.
- :func:`search_views`: Optuna trials (value vs trial, running best) and parameter importance.
- Fig. 1/2 :func:`motivation_bars`: prediction disagreement on clean vs noisy examples.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis.experiment import FAILED_STATUSES, GROUP_KEYS, Experiment  # noqa: E402
from analysis.tables import (DATASET_KS, DEFAULT_KS, DENOISING, _ORDER,  # noqa: E402
                             _sorted, backbone_name, dataset_name, method_name)

#: the two DeCA constants of each task family (paper 5.3.2)
SENSITIVITY_PARAMS: dict[str, tuple[str, str]] = {"rec": ("C0", "C1"), "image": ("C1", "C2")}
#: keys of search_trials.csv that are not searched hyperparameters
NOT_PARAMS = frozenset(GROUP_KEYS + ("seed", "task", "data_root", "device", "protocol", "status",
                                    "trial_id", "max_epochs", "noise_type", "h_backbone"))
DPI = 110


def _slug(*parts: object) -> str:
    text = "_".join(str(p) for p in parts if p is not None and str(p) != "")
    return re.sub(r"[^A-Za-z0-9@.+-]+", "_", text).strip("_")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _ok_trials(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty or "status" not in frame:
        return frame
    return frame[~frame["status"].fillna("").str.lower().isin(FAILED_STATUSES)]


def selection_metric(exp: Experiment, task: str) -> str | None:
    """The validation metric the search selected on: the manifest's ``selection_metric`` of the
    task family, else the ``selection_metric`` column the search wrote; None if neither says."""
    value = exp.manifest.get("selection_metric") if isinstance(exp.manifest, dict) else None
    if isinstance(value, dict) and isinstance(value.get(task), str):
        return value[task]
    for frame in (exp.search_trials, exp.seed_runs):
        if "selection_metric" in frame and "dataset" in frame:
            rows = frame[frame["dataset"].map(lambda d: exp.task_of(str(d)) == task)]
            names = rows["selection_metric"].dropna().unique()
            if len(names):
                return str(names[0])
    return None


def trial_values(exp: Experiment, trials: pd.DataFrame, task: str,
                 metric: str | None = None) -> tuple[pd.Series | None, str]:
    """(value per trial, its label): the search's ``score`` column (best value of the selection
    metric over the trial's epochs) when present, else the selection metric's own column."""
    if metric is None and "score" in trials:
        names = trials["selection_metric"].dropna().unique() if "selection_metric" in trials else []
        label = f"{names[0]} (best epoch)" if len(names) == 1 else "score (selection metric)"
        return pd.to_numeric(trials["score"], errors="coerce"), label
    column = metric or selection_metric(exp, task)
    if column is None or column not in trials:
        return None, column or "selection metric"
    return pd.to_numeric(trials[column], errors="coerce"), column


# ---------------------------------------------------------------------------- Fig. 3
def curve_metrics(exp: Experiment, dataset: str, split: str = "test_clean") -> list[str]:
    """The per-epoch metrics plotted for ``dataset``: accuracy (images: plus the accuracy on the
    noisy training labels, the memorisation, when the runs recorded it), or Recall/NDCG at the
    larger K."""
    if exp.task_of(dataset) == "image":
        return [f"{split}/accuracy"] + (["train/accuracy"] if "train/accuracy" in exp.curves else [])
    k = DATASET_KS.get(dataset, DEFAULT_KS)[1]
    wanted = [f"{split}/recall@{k}", f"{split}/ndcg@{k}"]
    have = [m for m in wanted if m in exp.curves]
    if have:
        return have
    return [c for c in exp.curves.columns if isinstance(c, str) and c.startswith(f"{split}/")][:2]


def learning_curves(exp: Experiment, out_dir: str | Path, split: str = "test_clean") -> list[Path]:
    """Fig. 3: one PNG per (data set, backbone[, noise rate]); a line per method with a band of
    +-1 std over seeds; the legend gives each method's number of seeds."""
    curves = exp.curves
    if curves.empty or "epoch" not in curves:
        return []
    paths = []
    extra = ["noise_rate"] if "noise_rate" in curves and curves["noise_rate"].notna().any() else []
    for key, sub in curves.groupby(["dataset", "backbone"] + extra, dropna=False):
        dataset, backbone = str(key[0]), str(key[1])
        rate = key[2] if extra else None
        metrics = [m for m in curve_metrics(exp, dataset, split) if m in sub and sub[m].notna().any()]
        if not metrics:
            continue
        fig = Figure(figsize=(5.2 * len(metrics), 3.8))
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
        for ax, metric in zip(axes, metrics):
            for method in _sorted(sub["method"].dropna().unique(), _ORDER):
                rows = sub[sub["method"] == method].drop_duplicates(["seed", "epoch"], keep="last")
                stats = rows.groupby("epoch")[metric].agg(["mean", "std", "count"]).sort_index()
                n_seeds = rows["seed"].nunique()
                line, = ax.plot(stats.index, stats["mean"], marker="." if len(stats) < 30 else None,
                                label=f"{method_name(method)} ({n_seeds} seed{'s' * (n_seeds != 1)})")
                band = stats["count"] > 1
                ax.fill_between(stats.index[band], (stats["mean"] - stats["std"])[band],
                                (stats["mean"] + stats["std"])[band], color=line.get_color(), alpha=0.2,
                                linewidth=0)
            ax.set_xlabel("epoch")
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        title = f"{dataset_name(dataset)} / {backbone_name(backbone)}"
        if rate is not None and pd.notna(rate):
            title += f" / noise {float(rate):.0%}"
        fig.suptitle(f"{title}: {split} metric per epoch (mean ± std over seeds)")
        paths.append(_save(fig, Path(out_dir) / f"fig3_curves_{_slug(dataset, backbone, rate if extra else None)}.png"))
    return paths


# ---------------------------------------------------------------------------- Fig. 4/5
def _bin(values: pd.Series, max_levels: int = 8, n_bins: int = 4) -> tuple[pd.Series, list[str]]:
    """Grid values (few levels, each tried more than once) stay as they are; continuous ones
    (Optuna samples) go into at most ``n_bins`` log-spaced bins (fewer for few trials)."""
    values = pd.to_numeric(values, errors="coerce")
    levels = np.sort(values.dropna().unique())
    if len(levels) <= max_levels and (values.dropna().duplicated().any() or len(levels) <= 2):
        labels = [f"{v:g}" for v in levels]
        return values.map(lambda v: f"{v:g}" if pd.notna(v) else None), labels
    n_bins = int(min(n_bins, max(2, np.sqrt(values.notna().sum()))))
    lo, hi = float(levels[0]), float(levels[-1])
    log = lo > 0 and hi / lo >= 10
    edges = np.logspace(math.log10(lo), math.log10(hi), n_bins + 1) if log else np.linspace(lo, hi, n_bins + 1)
    edges[0], edges[-1] = lo, hi  # log/exp round-off must not drop the extreme trials
    labels = [f"{a:.3g}–{b:.3g}" for a, b in zip(edges[:-1], edges[1:])]
    binned = pd.cut(values, bins=edges, labels=labels, include_lowest=True)
    return binned.astype("string"), labels


def sensitivity_heatmaps(exp: Experiment, out_dir: str | Path, metric: str | None = None,
                         trials: pd.DataFrame | None = None) -> list[Path]:
    """Fig. 4/5: mean validation metric over the two DeCA constants, one PNG per
    (data set, backbone, DeCA-family method) whose trials vary both constants.

    Each cell shows the mean over the trials in it and their number; a grid search gives one
    cell per grid point, Optuna trials are binned (log-spaced) per axis.
    """
    trials = _ok_trials(exp.search_trials if trials is None else trials)
    if trials.empty or not all(k in trials for k in GROUP_KEYS):
        return []
    paths = []
    for (dataset, backbone, method), sub in trials.groupby(list(GROUP_KEYS)):
        task = exp.task_of(str(dataset))
        px, py = SENSITIVITY_PARAMS[task]
        values, value_col = trial_values(exp, sub, task, metric)
        if not (method in DENOISING or str(method).startswith("deca")) or values is None \
                or not {px, py} <= set(sub):
            continue
        sub = pd.DataFrame({px: pd.to_numeric(sub[px], errors="coerce"),
                            py: pd.to_numeric(sub[py], errors="coerce"), "value": values}).dropna()
        if sub[px].nunique() < 2 or sub[py].nunique() < 2:
            continue
        bx, xlabels = _bin(sub[px])
        by, ylabels = _bin(sub[py])
        frame = pd.DataFrame({"x": bx.to_numpy(), "y": by.to_numpy(), "v": sub["value"].to_numpy()})
        mean = frame.pivot_table(index="y", columns="x", values="v", aggfunc="mean").reindex(
            index=ylabels, columns=xlabels)
        count = frame.pivot_table(index="y", columns="x", values="v", aggfunc="size").reindex(
            index=ylabels, columns=xlabels).fillna(0).astype(int)
        fig = Figure(figsize=(1.4 * len(xlabels) + 2.8, 1.0 * len(ylabels) + 2.2))
        ax = fig.subplots()
        data = np.ma.masked_invalid(mean.to_numpy(float))
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
        image = ax.imshow(data, cmap=cmap, origin="lower", aspect="auto")
        fig.colorbar(image, ax=ax, label=value_col)
        vmid = np.nanmean(mean.to_numpy(float))
        for (i, j), v in np.ndenumerate(mean.to_numpy(float)):
            text = "no trials" if not np.isfinite(v) else f"{v:.4f}\n(n={count.iat[i, j]})"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="black" if not np.isfinite(v) or v > vmid else "white")
        ax.set_xticks(range(len(xlabels)), xlabels, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(ylabels)), ylabels, fontsize=8)
        ax.set_xlabel(px)
        ax.set_ylabel(py)
        binned = " (binned)" if len(xlabels) < sub[px].nunique() or len(ylabels) < sub[py].nunique() else ""
        ax.set_title(f"{dataset_name(str(dataset))} / {backbone_name(str(backbone))} / "
                     f"{method_name(str(method))}: {value_col}\nover {px}, {py}: {len(sub)} trials{binned}",
                     fontsize=9)
        name = "fig5" if task == "rec" else "fig4"
        paths.append(_save(fig, Path(out_dir) / f"{name}_sensitivity_{_slug(dataset, backbone, method)}.png"))
    return paths


# ---------------------------------------------------------------------------- Fig. 6
def read_interpretability(path: str | Path) -> pd.DataFrame:
    """An interpretability export: columns ``user,item,rating,probability`` (+ optional method)."""
    path = Path(path)
    frame = pd.read_csv(path)
    missing = {"rating", "probability"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; an "
                         "interpretability export has user,item,rating,probability")
    return frame


def rating_probability(sources: dict[str, pd.DataFrame], out_path: str | Path,
                       title: str = "Mean real-positive probability per rating") -> Path:
    """Fig. 6: bars of the mean P(real positive | interacted) per rating, one colour per source
    (method / h model / data set), with standard-error bars and the pair counts."""
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    ratings = sorted({r for f in sources.values() for r in pd.to_numeric(f["rating"], errors="coerce")
                      .dropna().unique()})
    width = 0.8 / max(len(sources), 1)
    for i, (label, frame) in enumerate(sources.items()):
        stats = frame.groupby(pd.to_numeric(frame["rating"], errors="coerce"))["probability"].agg(
            ["mean", "sem", "size"]).reindex(ratings)
        x = np.arange(len(ratings)) + (i - (len(sources) - 1) / 2) * width
        ax.bar(x, stats["mean"], width, yerr=stats["sem"].fillna(0), capsize=2, label=label)
        for xi, (m, n) in zip(x, zip(stats["mean"], stats["size"])):
            if np.isfinite(m):  # number of pairs, written inside the foot of the bar
                ax.text(xi, 0.01, f"n={int(n)}", ha="center", va="bottom", fontsize=6, rotation=90,
                        color="white")
    ax.set_xticks(np.arange(len(ratings)), [f"{r:g}" for r in ratings])
    ax.set_xlabel("rating")
    ax.set_ylabel("mean P(real positive | interacted)")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(out_path))


# ---------------------------------------------------------------------------- search view
def _searched_params(trials: pd.DataFrame, params: Sequence[str] | None) -> list[str]:
    cols = params if params is not None else [
        c for c in trials.columns if isinstance(c, str) and c not in NOT_PARAMS
        and not c.startswith("_") and "/" not in c and c not in ("score", "epochs", "seconds",
                                                                  "best_epoch", "is_best", "path", "error")]
    out = []
    for c in cols:
        if c in trials and c not in NOT_PARAMS and trials[c].nunique(dropna=True) > 1:
            if pd.api.types.is_numeric_dtype(trials[c]) or trials[c].nunique() <= 20:
                out.append(c)
    return out


def param_importance(trials: pd.DataFrame, params: Sequence[str], value: str,
                     direction: str = "maximize") -> dict[str, float]:
    """Optuna's parameter importance (fANOVA) over finished trials; {} when not computable."""
    try:
        import optuna
        from optuna.distributions import CategoricalDistribution, FloatDistribution
    except ImportError:
        return {}
    trials = trials.dropna(subset=[value] + list(params))
    if len(trials) < 3 or not params:
        return {}
    dists = {}
    for p in params:
        col = trials[p]
        if pd.api.types.is_numeric_dtype(col):
            lo, hi = float(col.min()), float(col.max())
            dists[p] = FloatDistribution(lo, hi, log=lo > 0 and hi / lo >= 100)
        else:
            dists[p] = CategoricalDistribution(sorted(col.astype(str).unique()))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction)
    for rec in trials.to_dict("records"):
        values = {p: (float(rec[p]) if isinstance(dists[p], FloatDistribution) else str(rec[p]))
                  for p in params}
        study.add_trial(optuna.trial.create_trial(params=values, distributions=dists,
                                                  value=float(rec[value])))
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):
        return {}


def search_views(exp: Experiment, out_dir: str | Path, metric: str | None = None) -> list[Path]:
    """Per (data set, backbone, method): the search's value per trial with the running best, and
    Optuna's parameter importance when it can be computed."""
    trials = exp.search_trials
    if trials.empty or not all(k in trials for k in GROUP_KEYS):
        return []
    paths = []
    for (dataset, backbone, method), sub in trials.groupby(list(GROUP_KEYS)):
        task = exp.task_of(str(dataset))
        order = next((c for c in ("trial_number", "trial_index", "start_time", "timestamp", "date")
                      if c in sub), None)
        sub = sub.sort_values(order, kind="stable") if order else sub
        vals, value = trial_values(exp, sub, task, metric)
        if vals is None:
            continue
        failed = sub["status"].fillna("").str.lower().isin(FAILED_STATUSES) if "status" in sub else \
            pd.Series(False, index=sub.index)
        good = ~failed.to_numpy() & np.isfinite(vals.to_numpy(float))
        sub = sub.assign(_value=vals)
        params = _searched_params(sub[good], exp.search_params or None)
        importance = param_importance(sub[good], params, "_value")
        fig = Figure(figsize=(10, 3.8))
        ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
        idx = np.arange(len(sub))
        ax.scatter(idx[good], vals[good], s=14, label="finished trial")
        if (~good).any():
            ax.scatter(idx[~good], np.full((~good).sum(), np.nanmin(vals[good]) if good.any() else 0),
                       marker="x", color="red", label="failed trial")
        best = pd.Series(np.where(good, vals, np.nan)).cummax()
        ax.step(idx, best, where="post", color="black", linewidth=1, label="best so far")
        ax.set_xlabel("trial (order of the search)")
        ax.set_ylabel(value)
        ax.set_title(f"{len(sub)} trials ({int((~good).sum())} failed)", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        if importance:
            names = list(importance)[::-1]
            ax2.barh(names, [importance[n] for n in names])
            ax2.set_xlabel("importance (Optuna fANOVA)")
            ax2.set_title("parameter importance", fontsize=9)
        else:
            ax2.axis("off")
            ax2.text(0.5, 0.5, "parameter importance not available\n(needs >= 3 finished trials\n"
                     "with varied parameters)", ha="center", va="center", fontsize=9)
        fig.suptitle(f"Search: {dataset_name(str(dataset))} / {backbone_name(str(backbone))} / "
                     f"{method_name(str(method))}")
        paths.append(_save(fig, Path(out_dir) / f"search_{_slug(dataset, backbone, method)}.png"))
    return paths


# ---------------------------------------------------------------------------- Fig. 1/2
def motivation_bars(results: pd.DataFrame, out_path: str | Path, title: str) -> Path:
    """Fig. 1/2: for each model pair, the mean disagreement on clean and on noisy examples.

    ``results`` has columns ``pair``, ``kind`` (``different models``/``different seeds``),
    ``clean``, ``noisy``.
    """
    kinds = list(dict.fromkeys(results["kind"]))
    fig = Figure(figsize=(4.2 * len(kinds) + 0.6, 4.0), layout="constrained")
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    for ax, kind in zip(axes, kinds):
        sub = results[results["kind"] == kind]
        x = np.arange(len(sub))
        ax.bar(x - 0.2, sub["clean"], 0.4, label="clean", color="tab:blue")
        ax.bar(x + 0.2, sub["noisy"], 0.4, label="noisy", color="tab:red")
        ax.set_xticks(x, sub["pair"], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("mean prediction difference")
        ax.set_title(kind, fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    return _save(fig, Path(out_path))


def all_figures(exp: Experiment, out_dir: str | Path, split: str = "test_clean",
                interpretability: Iterable[str | Path] = ()) -> list[Path]:
    """Every figure the experiment supports."""
    out_dir = Path(out_dir)
    paths = learning_curves(exp, out_dir, split)
    paths += sensitivity_heatmaps(exp, out_dir)
    paths += search_views(exp, out_dir)
    paths += interpretability_figures([read_interpretability(p).assign(_file=Path(p).stem)
                                       for p in interpretability], out_dir)
    return paths


def interpretability_figures(frames: list[pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """Fig. 6 per data set: exports with ``dataset``/``backbone``/``method``/``seed`` columns
    (``analysis.exports``) are pooled over seeds per method; others are shown per file."""
    if not frames:
        return []
    data = pd.concat(frames, ignore_index=True)
    data["rating"] = pd.to_numeric(data["rating"], errors="coerce")
    if "dataset" not in data:
        data["dataset"] = ""
    paths = []
    for dataset, sub in data.groupby(data["dataset"].fillna(""), sort=True):
        sub = sub[sub["rating"].notna()]
        if sub.empty:
            continue  # no ratings (e.g. synthetic): nothing to plot against
        sources: dict[str, pd.DataFrame] = {}
        if "method" in sub and sub["method"].notna().all():
            by = ["backbone", "method"] if "backbone" in sub and sub["backbone"].notna().all() else ["method"]
            for key, grp in sub.groupby(by, sort=False):
                key = key if isinstance(key, tuple) else (key,)
                label = " / ".join([method_name(str(key[-1]))] + [backbone_name(str(k)) for k in key[:-1]])
                if "seed" in grp:
                    n = grp["seed"].nunique()
                    label += f" ({n} seed{'s' * (n != 1)})"
                sources[label] = grp
        else:
            sources = {str(f): grp for f, grp in sub.groupby("_file", sort=False)}
        title = "Mean real-positive probability per rating" + (f": {dataset_name(str(dataset))}" if dataset else "")
        name = "fig6_rating_probability" + (f"_{_slug(dataset)}" if dataset else "")
        paths.append(rating_probability(sources, Path(out_dir) / f"{name}.png", title=title))
    return paths
