"""Turn Tune results into the summary tables of an experiment folder (docs/architecture.md).

- ``summary/search_trials.csv``: every search trial: unit, trial id, status, error, epochs,
  best epoch, ``score`` (best selection metric), ``selection_metric``, seconds, ``is_best``,
  ``path`` (the trial folder), ``checkpoint`` (its last checkpoint) and its configuration as
  ``config/<key>`` columns.
- ``summary/seed_runs.csv``: one row per (data set, backbone, method, seed): status, the
  configuration (``config/<key>``), the metrics of the run's best epoch (the epoch that
  ``Trainer.fit`` restores, chosen on the selection metric, never on test), ``path`` and
  ``checkpoint``: the checkpoint folder of the run's last epoch, relative to the experiment
  folder. Epochs count from 1 (``epochs``, ``best_epoch``) while Tune numbers checkpoint folders
  from 0: ``checkpoint_000009`` holds the state after epoch 10. That last checkpoint holds
  ``best_state``, the weights of ``best_epoch``, which ``python -m deca_tune.recommend
  <checkpoint>`` uses (``--weights last`` for the last epoch's).
- ``summary/curves.csv``: one row per (data set, backbone, method, seed, epoch): every metric.
- ``summary/summary.csv``: per unit, ``n_seeds`` (finished), ``seeds``, ``missing_seeds``,
  ``<metric>/mean``, ``<metric>/std`` (sample std, ddof=1) over the finished seeds, and
  ``search_seconds`` / ``seed_seconds``: wall time of the unit's search and seed runs summed
  over every run of the driver (an interrupted run and its resumes).
- ``summary/timing.csv``: those seconds per unit and driver run (``run`` 1, 2, ... and
  ``total``).

Status values: ``completed`` (ran to the end or the trainer's own early stopping), ``stopped``
(ASHA ended it early), ``error`` (a deterministic error, e.g. an invalid configuration or a
non-finite loss, ended it without retry, or it raised and used up ``--max-failures``; the
one-line message is in ``error``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from deca_tune.search.plan import Unit
from trainables import TRIAL_ERROR

UNIT_KEYS = ["task", "dataset", "backbone", "method"]
#: Tune's bookkeeping columns, left out of the curves
_TUNE_COLUMNS = {"timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration",
                 "trial_id", "date", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip",
                 "time_since_restore", "iterations_since_restore", "logdir", "worker_pid", "data_from_driver",
                 "setup_seconds", "selection_metric", "trainer_finished", "device", "gpu_ids", "restored_from"}


def _flat_config(config: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in config.items():
        out[f"config/{k}"] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
    return out


def _first_line(error: BaseException | None) -> str:
    if error is None:
        return ""
    text = str(error).strip() or type(error).__name__
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # Ray wraps the trial's exception; its last line holds the original message
    return lines[-1][:500] if lines else type(error).__name__


def _curve(result: Any) -> pd.DataFrame:
    df = result.metrics_dataframe
    if df is None or df.empty or "epoch" not in df:
        return pd.DataFrame()
    df = df[[c for c in df.columns if c not in _TUNE_COLUMNS and not str(c).startswith("config/")
             and c not in (TRIAL_ERROR, "trial_error_type")]]
    df = df[pd.to_numeric(df["epoch"], errors="coerce").notna()]  # a deterministic error's last report
    # a trial resumed from a checkpoint may report an epoch twice: keep the latest report
    df = df.drop_duplicates(subset="epoch", keep="last").sort_values("epoch").reset_index(drop=True)
    for col in ("epoch", "best_epoch"):
        if col in df:
            df[col] = df[col].astype("Int64")
    return df


def _status(result: Any, max_epochs: int) -> str:
    last = result.metrics or {}
    if result.error is not None or last.get(TRIAL_ERROR):
        return "error"
    if last.get("trainer_finished") or int(last.get("epoch", 0) or 0) >= max_epochs:
        return "completed"
    return "stopped" if last else "error"


def _int(value: Any) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _error(result: Any) -> str:
    return (result.metrics or {}).get(TRIAL_ERROR) or _first_line(result.error)


def _relative(path: str | Path | None, experiment_dir: Path | None) -> str | None:
    if path is None:
        return None
    path = Path(str(path))
    if experiment_dir is not None and path.is_relative_to(experiment_dir):
        return str(path.relative_to(experiment_dir))
    return str(path)


def checkpoint_path(result: Any, experiment_dir: Path | None = None) -> str | None:
    """The trial's last checkpoint folder (``checkpoint_<n>``, n from 0 = after epoch n + 1)."""
    checkpoint = getattr(result, "checkpoint", None)
    if checkpoint is not None:
        return _relative(checkpoint.path, experiment_dir)
    found = sorted(Path(result.path).glob("checkpoint_*")) if result.path else []
    return _relative(found[-1], experiment_dir) if found else None


def _unit_cols(unit: Unit) -> dict[str, Any]:
    cols = {"task": unit.task, "dataset": unit.dataset, "backbone": unit.backbone, "method": unit.method}
    if unit.variant:  # a varied spec key (``vary:``): its units are told apart by this column
        cols["variant"] = unit.variant
    return cols


def search_rows(unit: Unit, grid: Any, experiment_dir: Path) -> list[dict[str, Any]]:
    """One row per search trial of ``unit`` (``grid``: its ``ResultGrid``)."""
    rows = []
    for result in grid:
        last = result.metrics or {}
        config = result.config or {}
        curve = _curve(result)
        rows.append({
            **_unit_cols(unit),
            "trial_id": last.get("trial_id") or Path(result.path).name,
            "status": _status(result, int(config.get("max_epochs", 0))),
            "error": _error(result),
            "epochs": int(curve["epoch"].max()) if not curve.empty else 0,
            "best_epoch": _int(last.get("best_epoch")),
            "score": last.get("score"),
            "selection_metric": last.get("selection_metric"),
            "seconds": last.get("time_total_s"),
            "device": last.get("device"),
            "is_best": False,
            "path": _relative(result.path, experiment_dir),
            "checkpoint": checkpoint_path(result, experiment_dir),
            **_flat_config(config),
        })
    return rows


def pick_best(grid: Any) -> Any | None:
    """The trial with the highest ``score`` among those without error (first one on ties)."""
    best, best_score = None, -math.inf
    for result in grid:
        last = result.metrics or {}
        score = last.get("score")
        if last.get(TRIAL_ERROR) or result.error is not None:
            continue
        if score is not None and math.isfinite(score) and score > best_score:
            best, best_score = result, score
    return best


def seed_rows(unit: Unit, grid: Any, experiment_dir: Path | None = None
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows of seed_runs.csv, rows of curves.csv) for the seed reruns of ``unit``."""
    runs, curves = [], []
    for result in grid:
        config = result.config or {}
        seed = config.get("seed")
        curve = _curve(result)
        last = result.metrics or {}
        row = {**_unit_cols(unit), "seed": seed, "status": _status(result, int(config.get("max_epochs", 0))),
               "error": _error(result), "epochs": int(curve["epoch"].max()) if not curve.empty else 0,
               "best_epoch": _int(last.get("best_epoch")), "selection_metric": last.get("selection_metric"),
               "seconds": last.get("time_total_s"), "device": last.get("device"),
               "path": _relative(result.path, experiment_dir),
               "checkpoint": checkpoint_path(result, experiment_dir), **_flat_config(config)}
        if not curve.empty:
            best_epoch = last.get("best_epoch")
            at_best = curve[curve["epoch"] == best_epoch] if best_epoch is not None else curve.iloc[0:0]
            if not at_best.empty:
                row.update({k: v for k, v in at_best.iloc[0].items() if k not in ("epoch", "best_epoch")})
            for rec in curve.to_dict("records"):
                curves.append({**_unit_cols(unit), "seed": seed, "trial_id": Path(result.path).name, **rec})
        runs.append(row)
    runs.sort(key=lambda r: (r["seed"] is None, r["seed"]))
    return runs, curves


def summarise(runs: pd.DataFrame, expected_seeds: list[int],
              timing: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """Mean and sample std (ddof=1) over the finished seeds of every unit (plus its cumulative
    ``search_seconds`` / ``seed_seconds`` from ``timing``, the manifest's entry)."""
    if runs.empty:
        return pd.DataFrame()
    metric_cols = [c for c in runs.columns
                   if "/" in c and not c.startswith("config/") and pd.api.types.is_numeric_dtype(runs[c])]
    metric_cols += [c for c in ("loss", "score") if c in runs.columns]
    out = []
    unit_keys = UNIT_KEYS + (["variant"] if "variant" in runs.columns else [])
    if "variant" in runs.columns:
        runs = runs.assign(variant=runs["variant"].fillna(""))
    for keys, group in runs.groupby(unit_keys, sort=False):
        ok = group[group["status"] != "error"]
        done = sorted(int(s) for s in ok["seed"].dropna())
        row = dict(zip(unit_keys, keys))
        row.update({"n_seeds": len(done), "seeds": " ".join(map(str, done)),
                    "missing_seeds": " ".join(str(s) for s in expected_seeds if s not in done)})
        for col in metric_cols:
            values = pd.to_numeric(ok[col], errors="coerce").dropna()
            row[f"{col}/mean"] = values.mean() if len(values) else math.nan
            row[f"{col}/std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        unit_timing = (timing or {}).get("__".join(str(k) for k in keys[1:] if k != ""), {})
        row["search_seconds"] = unit_timing.get("search_seconds")
        row["seed_seconds"] = unit_timing.get("seed_seconds")
        out.append(row)
    return pd.DataFrame(out)


def timing_rows(timing: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of ``timing.csv``: per unit, one per driver run plus its total."""
    rows = []
    for unit, entry in timing.items():
        for run in entry.get("runs", []):
            rows.append({"unit": unit, "run": run.get("run"), "search_seconds": run.get("search_seconds", 0.0),
                         "seed_seconds": run.get("seed_seconds", 0.0)})
        rows.append({"unit": unit, "run": "total", "search_seconds": entry.get("search_seconds", 0.0),
                     "seed_seconds": entry.get("seed_seconds", 0.0)})
    return rows


def write_summary(experiment_dir: Path, search: list[dict], runs: list[dict], curves: list[dict],
                  expected_seeds: list[int], timing: dict[str, dict[str, Any]] | None = None
                  ) -> dict[str, pd.DataFrame]:
    """Write the CSVs under ``summary/``; returns the frames."""
    folder = experiment_dir / "summary"
    folder.mkdir(parents=True, exist_ok=True)
    frames = {"search_trials": pd.DataFrame(search), "seed_runs": pd.DataFrame(runs),
              "curves": pd.DataFrame(curves)}
    frames["summary"] = summarise(frames["seed_runs"], expected_seeds, timing)
    if timing:
        frames["timing"] = pd.DataFrame(timing_rows(timing))
    for name, frame in frames.items():
        # whole or not at all: --resume reads these back, and a run may be killed mid-write
        tmp = folder / f"{name}.csv.tmp"
        frame.to_csv(tmp, index=False)
        tmp.replace(folder / f"{name}.csv")
    return frames


def _ks(summary: pd.DataFrame, split: str, metric: str) -> list[int]:
    ks = sorted({int(c.split("@")[1].split("/")[0]) for c in summary.columns
                 if c.startswith(f"{split}/{metric}@") and c.endswith("/mean")})
    return sorted({ks[0], ks[-1]}) if ks else []


def format_table(summary: pd.DataFrame, split: str = "test_clean") -> str:
    """The printed three-seed table: mean ± std of the clean-test metrics, one line per unit.

    Recommendation: Recall and NDCG at the smallest and largest K (ML-100K: 3 and 20, as in the
    paper's Table 2); image: accuracy.
    """
    if summary.empty:
        return "(no finished seed runs)"
    cols: list[str] = []
    for metric in ("recall", "ndcg"):
        cols += [f"{split}/{metric}@{k}" for k in _ks(summary, split, metric)]
    cols += [c[:-5] for c in summary.columns if c.endswith("/accuracy/mean") and c.startswith("test")]
    # a data set with given labels also has test/accuracy (its test labels as given): named in full
    header = ["data set", "backbone", "method", "seeds"] + [
        c.split("/", 1)[1] if c.startswith(f"{split}/") else c for c in cols]
    lines = []
    for _, row in summary.iterrows():
        cells = [row["dataset"], row["backbone"], row["method"], str(row["n_seeds"])]
        for c in cols:
            mean, std = row.get(f"{c}/mean"), row.get(f"{c}/std")
            if mean is None or not math.isfinite(mean):
                cells.append("-")
            elif std is None or not math.isfinite(std):
                cells.append(f"{mean:.4f}")
            else:
                cells.append(f"{mean:.4f} ± {std:.4f}")
        lines.append(cells)
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths))  # noqa: E731
    title = f"{split.replace('_', ' ')} metrics, mean ± std over seeds (best epoch on "
    title += "validation, per seed)"
    return "\n".join([title, fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """``frame``'s rows as dicts, empty cells as None (as the driver's own rows have them)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def finished_units(experiment_dir: Path, units: list[Unit], seeds: list[int]
                   ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The units of ``units`` that an earlier run of the driver finished, read back from
    ``summary/*.csv``: unit key -> its rows (``search``, ``runs``, ``curves``), as the driver keeps
    them. Finished: search trials recorded and a seed run without error for every seed of
    ``seeds``. ``--resume`` keeps these rows and does not open the unit's Tune folders, so the
    summary and the manifest are all an experiment needs to resume (a copy without ``search/`` and
    ``seeds/``, e.g. a preset's committed record, continues where it ended)."""
    folder = experiment_dir / "summary"
    frames = {}
    for kind, name in (("search", "search_trials.csv"), ("runs", "seed_runs.csv"), ("curves", "curves.csv")):
        path = folder / name
        try:
            frames[kind] = pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            return {}  # a damaged summary carries nothing over: the Tune folders decide, as before
    if frames["runs"].empty or frames["search"].empty:
        return {}
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for unit in units:
        picked = {}
        for kind, frame in frames.items():
            if frame.empty or not set(UNIT_KEYS) <= set(frame.columns):
                picked[kind] = frame.iloc[0:0]
                continue
            mask = pd.Series(True, index=frame.index)
            for col, value in _unit_cols(unit).items():
                column = frame[col] if col in frame else pd.Series("", index=frame.index)
                mask &= column.fillna("").astype(str) == str(value)
            if "variant" not in _unit_cols(unit) and "variant" in frame:
                mask &= frame["variant"].fillna("").astype(str) == ""
            picked[kind] = frame[mask]
        runs = picked["runs"]
        ok = runs[runs["status"].astype(str) != "error"] if "status" in runs else runs.iloc[0:0]
        done = {int(s) for s in pd.to_numeric(ok.get("seed", pd.Series(dtype=float)), errors="coerce").dropna()}
        if picked["search"].empty or not set(seeds) <= done:
            continue
        out[unit.key] = {kind: _records(frame) for kind, frame in picked.items()}
    return out
