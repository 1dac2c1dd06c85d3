"""Image benchmark: clean test accuracy of normal / itlm / mwnet / deca_p under label noise, the
paper's Table 4 and Fig. 3 at a scale one CPU core runs, and the per-image cost of the backbones.

``python -m deca_tune.bench images [--preset memorise] [--rates ...] [--noise-types ...]
[--methods ...] [--seeds ...] [--epochs E] [--train-size N] [--tuned-samples K] --out DIR``

For every cell (noise type, noise rate) x method x seed it trains one run with
:class:`~deca_tune.training.image_trainer.ImageTrainer` and records the clean test accuracy of
the **last** epoch and of the epoch **selected** on the *noisy* validation split (the fair
number; test never selects), the peak over epochs (an oracle, for the memorisation drop) and
the accuracy on the noisy training labels (memorisation). The run is resumable: each finished
run is one JSON file under ``DIR/runs/``; running the same command again skips them (a changed
setting is an error naming the file). After every run it rewrites

- ``DIR/<noise type>/``: an experiment folder in the layout ``python -m deca_tune.report`` reads
  (``manifest.json``, ``summary/seed_runs.csv`` with the selected epoch's metrics plus
  ``test_clean_last/accuracy`` etc., ``summary/curves.csv``, ``summary/summary.csv``), one per
  noise type because the report's Table 4 keys on the noise rate only;
- ``DIR/tables.md`` / ``DIR/tables.csv``: both tables (last and selected epoch, every cell) and,
  with ``--tuned-samples K``, the tuned column: ``python -m deca_tune.search`` with the same
  budget of K Optuna + ASHA trials for every method at the first cell, then the seeds
  (experiment folder ``DIR/tuned``, resumed when it exists).

``--preset memorise`` is the setting of ``docs/benchmarks-images.md`` (a regime where normal
training memorises the noisy labels). ``--timing`` instead measures the training cost per image
of every backbone (one epoch per method, or ``--per-image`` for the plain normal step).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from deca_tune.bench.child import run_child
from deca_tune.options import key_value, nested
from deca_tune.training.image_trainer import ImageTrainer

METHODS = ("normal", "itlm", "mwnet", "deca_p")
#: Table 4 of the paper (ResNet-32, full data, tuned): clean test accuracy, %
PAPER_TABLE4 = {
    "fashion-mnist": {
        "normal": {0.1: 87.01, 0.2: 86.42, 0.3: 85.58, 0.4: 84.89, 0.5: 83.62},
        "mwnet": {0.1: 88.01, 0.2: 86.54, 0.3: 86.81, 0.4: 86.18, 0.5: 84.37},
        "itlm": {0.1: 89.01, 0.2: 88.55, 0.3: 87.56, 0.4: 87.10, 0.5: 86.53},
        "deca_p": {0.1: 89.47, 0.2: 89.44, 0.3: 88.86, 0.4: 88.72, 0.5: 88.25},
    },
    "cifar10": {
        "normal": {0.1: 89.01, 0.2: 87.44, 0.3: 86.06, 0.4: 84.15, 0.5: 81.83},
        "mwnet": {0.1: 89.33, 0.2: 88.36, 0.3: 86.70, 0.4: 85.01, 0.5: 82.87},
        "itlm": {0.1: 89.45, 0.2: 87.79, 0.3: 86.22, 0.4: 84.95, 0.5: 82.12},
        "deca_p": {0.1: 90.32, 0.2: 88.78, 0.3: 87.07, 0.4: 86.62, 0.5: 84.32},
    },
}
PAPER_FMNIST_40 = {m: v[0.4] for m, v in PAPER_TABLE4["fashion-mnist"].items()}

#: the memorisation regime (docs/benchmarks-images.md): a 4-layer MLP on 4,000 Fashion-MNIST
#: images, 60 epochs of SGD -- normal training reaches ~96% on the noisy training labels and
#: its clean test accuracy falls ~18 points after its peak (40% symmetric noise)
PRESETS: dict[str, dict[str, Any]] = {
    "memorise": {
        "dataset": "fashion-mnist", "backbone": "mlp", "epochs": 60, "train_size": 4000, "valid_size": 1000,
        "rates": [0.4, 0.1, 0.2, 0.3, 0.5], "noise_types": ["symmetric", "pair"], "seeds": [0, 1, 2],
        "methods": list(METHODS), "tuned_samples": 12, "tuned_grace": 10,
        "set": {"lr": 0.01, "meta_per_class": 10, "T1": 30, "round_epochs": 15, "eval_train_rows": 1000},
    },
}
#: fallbacks of options a preset may set
FALLBACKS: dict[str, Any] = {
    "dataset": "fashion-mnist", "backbone": "convnet", "epochs": 20, "train_size": None, "valid_size": None,
    "rates": [0.4], "noise_types": ["symmetric"], "seeds": [0, 1, 2], "methods": list(METHODS),
    "tuned_samples": 0, "tuned_grace": 2,
}
#: method settings the base spec scales with --epochs unless given (only for methods that have them)
EPOCH_SCALED = ("T1", "round_epochs")
#: per-run columns of the last epoch copied into seed_runs.csv as ``<split>_last/<metric>``
LAST_COLUMNS = ("test_clean/accuracy", "valid/accuracy", "valid_clean/accuracy", "train/accuracy",
                "train_noisy/memorised")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deca_tune.bench images", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="a named setting; the options below override it")
    p.add_argument("--dataset", default=None)
    p.add_argument("--backbone", default=None)
    p.add_argument("--methods", nargs="+", default=None)
    p.add_argument("--rates", "--noise", nargs="+", type=float, default=None,
                   help="noise rates (fraction of labels changed); the first cell runs first")
    p.add_argument("--noise-types", "--noise-type", nargs="+", default=None, choices=("symmetric", "pair"))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--train-size", type=int, default=None, help="use only this many training images")
    p.add_argument("--valid-size", type=int, default=None, help="validation images (default 10,000)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--set", nargs="*", type=key_value, default=[], metavar="KEY=VALUE",
                   help="extra spec entries (YAML values, dotted keys)")
    p.add_argument("--tuned-samples", type=int, default=None,
                   help="Optuna + ASHA trials per method for the tuned column (0: none)")
    p.add_argument("--tuned-grace", type=int, default=None, help="ASHA grace period of the tuned search")
    p.add_argument("--tuned-first", action="store_true",
                   help="run the tuned search right after the first cell (default: after every cell)")
    p.add_argument("--out", default="results/bench-images")
    p.add_argument("--timing", action="store_true", help="one epoch per method on --train-size images")
    p.add_argument("--tables-only", action="store_true",
                   help="rewrite the experiment folders and tables from the finished runs; train nothing")
    p.add_argument("--per-image", nargs="*", default=None, metavar="BACKBONE",
                   help="training / evaluation ms per image of a normal step for these backbones")
    p.add_argument("--input", default="1x28x28", help="--per-image input shape CxHxW (CIFAR: 3x32x32)")
    p.add_argument("--bf16", action="store_true", help="--per-image: add bfloat16-autocast rows")
    return p


def resolve_options(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the options left unset from the preset, then the fallbacks."""
    preset = PRESETS.get(args.preset or "", {})
    for key, value in FALLBACKS.items():
        if getattr(args, key) is None:
            setattr(args, key, preset.get(key, value))
    args.preset_set = dict(preset.get("set", {}))
    return args


def _base_spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "task": "image", "dataset": args.dataset, "backbone": args.backbone,
        "max_epochs": args.epochs, "data_root": args.data_root, "device": args.device,
        "train_size": args.train_size, "valid_size": args.valid_size,
        # epoch-scaled method defaults: DeCA(p) switches to Eq. 24 halfway, ITLM has 4 rounds
        "T1": max(1, args.epochs // 2), "round_epochs": max(1, args.epochs // 4),
        "pretrain_cache": str(Path(args.out) / "pretrained"),
        **getattr(args, "preset_set", {}),
    }
    return nested(args.set, spec)


def _only_known(spec: dict[str, Any]) -> dict[str, Any]:
    from deca_tune.tasks import get_task

    return get_task("image").only_known(spec)


def run_one(spec: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train one (method, seed); returns its summary row and its per-epoch rows."""
    spec = _only_known(spec)
    trainer = ImageTrainer(spec)
    curves = []
    start = time.perf_counter()
    while not trainer.finished:
        m = trainer.train_epoch()
        curves.append({"method": spec["method"], "seed": spec["seed"], **m})
    last, best = curves[-1], trainer.best
    row = {
        "method": spec["method"], "seed": spec["seed"], "epochs": trainer.epoch,
        "final_test_acc": last["test_clean/accuracy"], "best_test_acc": best["test_clean/accuracy"],
        "peak_test_acc": max(c["test_clean/accuracy"] for c in curves),
        "best_epoch": best["epoch"], "best_valid_acc": best["valid/accuracy"],
        "final_train_acc": last.get("train/accuracy", math.nan),
        "final_memorised": last.get("train_noisy/memorised", math.nan),
        "sec_per_epoch": sum(c["epoch_seconds"] for c in curves) / len(curves),
        "pretrain_seconds": last["pretrain_seconds"],
        "pretrain_cached": bool(trainer.pretrain_info.get("cached", False)),
        "seconds": time.perf_counter() - start,
        "train_size": len(trainer.split.train_y_noisy),
        "realised_noise": trainer.split.realised_noise_rate,
        "best": dict(best),
    }
    return row, curves


# ------------------------------------------------------------------ resumable plan
def cells(args: argparse.Namespace) -> list[tuple[str, float]]:
    """(noise type, rate) in run order: the first type's first rate first (Fig. 3), then that
    type's other rates, then the other types."""
    return [(kind, float(rate)) for kind in args.noise_types for rate in args.rates]


def run_path(out: Path, kind: str, rate: float, method: str, seed: int) -> Path:
    return out / "runs" / kind / f"{rate:g}" / f"{method}__seed{seed}.json"


def _spec_key(spec: dict[str, Any]) -> str:
    relevant = {k: v for k, v in spec.items() if k not in ("data_root", "device", "pretrain_cache")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_cached(spec: dict[str, Any], path: Path) -> dict[str, Any]:
    """The record of one run: read from ``path`` when it finished before, else trained and saved."""
    spec = _only_known(spec)
    key = _spec_key(spec)
    if path.exists():
        record = json.loads(path.read_text())
        if record.get("spec_key") != key:
            raise SystemExit(f"{path} holds a run with other settings than this command's "
                             f"(spec key {record.get('spec_key')} != {key}); use another --out or delete it")
        return record
    row, curve = run_one(spec)
    record = {"spec_key": key, "spec": spec, "row": row, "curve": curve,
              "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, default=float))
    os.replace(tmp, path)
    return record


def _flat_config(spec: dict[str, Any]) -> dict[str, Any]:
    return {f"config/{k}": json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
            for k, v in spec.items()}


def experiment_frames(records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(seed_runs, curves) in the experiment-folder layout (docs/architecture.md)."""
    runs, curves = [], []
    for rec in records:
        spec, row, curve = rec["spec"], rec["row"], rec["curve"]
        unit = {"task": "image", "dataset": spec["dataset"], "backbone": spec["backbone"],
                "method": spec["method"], "seed": spec["seed"], "noise_rate": float(spec["noise_rate"]),
                "noise_type": spec["noise_type"]}
        best = row["best"]
        seed_row = {**unit, "status": "completed", "error": "", "epochs": row["epochs"],
                    "best_epoch": row["best_epoch"], "selection_metric": "valid/accuracy",
                    "seconds": row["seconds"], "device": spec.get("device", "cpu"),
                    **_flat_config(spec),
                    **{k: v for k, v in best.items() if k != "epoch"}}
        last = curve[-1]
        for col in LAST_COLUMNS:
            if col in last:
                split, metric = col.split("/", 1)
                seed_row[f"{split}_last/{metric}"] = last[col]
        seed_row["test_clean_peak/accuracy"] = row["peak_test_acc"]
        runs.append(seed_row)
        for c in curve:
            curves.append({**unit, "trial_id": f"{spec['method']}__seed{spec['seed']}", "best_epoch": row["best_epoch"],
                           **{k: v for k, v in c.items() if k not in ("method", "seed")}})
    return pd.DataFrame(runs), pd.DataFrame(curves)


def _summary(runs: pd.DataFrame) -> pd.DataFrame:
    if runs.empty:
        return runs
    keys = ["task", "dataset", "backbone", "method", "noise_type", "noise_rate"]
    metric_cols = [c for c in runs.columns if "/" in c and not c.startswith("config/")
                   and pd.api.types.is_numeric_dtype(runs[c])]
    out = []
    for vals, group in runs.groupby(keys, sort=False):
        row = dict(zip(keys, vals))
        row.update({"n_seeds": len(group), "seeds": " ".join(str(s) for s in sorted(group["seed"]))})
        for col in metric_cols:
            v = pd.to_numeric(group[col], errors="coerce").dropna()
            row[f"{col}/mean"] = v.mean() if len(v) else math.nan
            row[f"{col}/std"] = v.std(ddof=1) if len(v) > 1 else math.nan
        out.append(row)
    return pd.DataFrame(out)


def write_experiment(folder: Path, records: list[dict[str, Any]], manifest: dict[str, Any]) -> None:
    """One experiment folder (one noise type) the report reads."""
    runs, curves = experiment_frames(records)
    (folder / "summary").mkdir(parents=True, exist_ok=True)
    runs.to_csv(folder / "summary" / "seed_runs.csv", index=False)
    curves.to_csv(folder / "summary" / "curves.csv", index=False)
    _summary(runs).to_csv(folder / "summary" / "summary.csv", index=False)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))


# ------------------------------------------------------------------ tables
def _cell(values: pd.Series, digits: int = 2) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna() * 100
    if v.empty:
        return "-"
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f} (1 seed)"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" + ("" if len(v) >= 3 else f" ({len(v)} seeds)")


def bench_tables(records: list[dict[str, Any]], args: argparse.Namespace,
                 tuned: pd.DataFrame | None = None) -> tuple[str, pd.DataFrame]:
    """The Table 4 analogue (selected and last epoch, every noise type and rate), the memorisation
    table and the tuned column, as Markdown plus the tidy numbers."""
    runs, _ = experiment_frames(records)
    lines: list[str] = []
    tidy = []
    if runs.empty:
        return "(no finished runs)\n", pd.DataFrame()
    methods = [m for m in args.methods if m in set(runs["method"])]
    measures = [("selected", "test_clean/accuracy",
                 "clean test accuracy (%) at the epoch selected on noisy validation"),
                ("last", "test_clean_last/accuracy", "clean test accuracy (%) of the last epoch"),
                ("peak", "test_clean_peak/accuracy", "peak clean test accuracy over epochs (%; oracle, test-selected)"),
                ("train", "train_last/accuracy", "last-epoch accuracy on the noisy training labels (%; memorisation)")]
    paper = PAPER_TABLE4.get(str(args.dataset), {})
    for kind in args.noise_types:
        sub = runs[runs["noise_type"] == kind]
        if sub.empty:
            continue
        rates = [r for r in args.rates if (sub["noise_rate"] == r).any()]
        rates = sorted(rates)
        for name, col, caption in measures:
            lines += ["", f"**{kind} noise: {caption}**", "",
                      "| method | " + " | ".join(f"{r:.0%}" for r in rates) + " |",
                      "|---|" + "---|" * len(rates)]
            for method in methods:
                cells_ = []
                for r in rates:
                    vals = sub[(sub["method"] == method) & (sub["noise_rate"] == r)][col] if col in sub else pd.Series([], dtype=float)
                    cells_.append(_cell(vals))
                    v = pd.to_numeric(vals, errors="coerce").dropna()
                    tidy.append({"noise_type": kind, "noise_rate": r, "method": method, "measure": name,
                                 "mean": v.mean() * 100 if len(v) else math.nan,
                                 "std": v.std(ddof=1) * 100 if len(v) > 1 else math.nan, "n": len(v)})
                lines.append(f"| {method} | " + " | ".join(cells_) + " |")
            if name == "selected" and kind == "symmetric" and paper:
                for method in methods:
                    if method in paper:
                        lines.append(f"| *paper: {method}* | "
                                     + " | ".join(f"*{paper[method][r]:.2f}*" if r in paper[method] else "-"
                                                  for r in rates) + " |")
    # paired per seed: every method of a seed trains on the same split and noise draw
    target = "deca_p" if "deca_p" in methods else None
    if target is not None:
        for kind in args.noise_types:
            sub = runs[runs["noise_type"] == kind]
            rates = sorted(r for r in args.rates if (sub["noise_rate"] == r).any())
            if sub.empty:
                continue
            for name, col in (("selected", "test_clean/accuracy"), ("last", "test_clean_last/accuracy")):
                lines += ["", f"**{kind} noise: DeCA(p) minus each baseline, {name} epoch, paired by seed "
                              "(points; mean ± std of the per-seed differences)**", "",
                          "| baseline | " + " | ".join(f"{r:.0%}" for r in rates) + " |",
                          "|---|" + "---|" * len(rates)]
                for base_m in [m for m in methods if m != target]:
                    cells_ = []
                    for r in rates:
                        cell = sub[sub["noise_rate"] == r].pivot_table(index="seed", columns="method", values=col)
                        if target in cell and base_m in cell:
                            d = (cell[target] - cell[base_m]).dropna() * 100
                            cells_.append("-" if d.empty else (f"{d.mean():+.2f} ± {d.std(ddof=1):.2f}" if len(d) > 1
                                                               else f"{d.iloc[0]:+.2f} (1 seed)"))
                            tidy.append({"noise_type": kind, "noise_rate": r, "method": f"deca_p-{base_m}",
                                         "measure": f"diff_{name}", "mean": d.mean() if len(d) else math.nan,
                                         "std": d.std(ddof=1) if len(d) > 1 else math.nan, "n": len(d)})
                        else:
                            cells_.append("-")
                    lines.append(f"| {base_m} | " + " | ".join(cells_) + " |")
    seconds = runs.groupby("method")["seconds"].mean()
    lines += ["", "**seconds per run (mean over finished runs)**: "
              + ", ".join(f"{m} {seconds[m]:.0f}" for m in methods if m in seconds)]
    if tuned is not None and not tuned.empty:
        lines += ["", "**tuned column** (symmetric "
                  f"{args.rates[0]:.0%}; best configuration of the Optuna + ASHA search, 3 seeds):", "",
                  "| method | search | trials: finished / stopped by ASHA / failed | selected epoch | last epoch "
                  "| configuration |", "|---|---|---|---|---|---|"]
        for experiment in sorted(tuned["experiment"].unique(), key=lambda e: (e != "tuned", e)):
            for method in methods:
                t = tuned[(tuned["method"] == method) & (tuned["experiment"] == experiment)]
                if t.empty:
                    if experiment == "tuned":
                        lines.append(f"| {method} | {experiment} | | missing | missing | |")
                    continue
                r0 = t.iloc[0]
                trials = f"{r0.get('n_completed', 0)} / {r0.get('n_stopped', 0)} / {r0.get('n_error', 0)}"
                lines.append(f"| {method} | {experiment} | {trials} | {_cell(t['test_clean/accuracy'])} "
                             f"| {_cell(t['test_clean_last/accuracy'])} | {r0.get('config_text', '')} |")
                for name, col in (("tuned_selected", "test_clean/accuracy"), ("tuned_last", "test_clean_last/accuracy")):
                    v = pd.to_numeric(t[col], errors="coerce").dropna()
                    tidy.append({"noise_type": "symmetric", "noise_rate": args.rates[0],
                                 "method": method if experiment == "tuned" else f"{method} ({experiment})",
                                 "measure": name, "mean": v.mean() * 100 if len(v) else math.nan,
                                 "std": v.std(ddof=1) * 100 if len(v) > 1 else math.nan, "n": len(v)})
    return "\n".join(lines).lstrip("\n") + "\n", pd.DataFrame(tidy)


# ------------------------------------------------------------------ tuned column
#: searched hyperparameters shown in the tuned table
TUNED_KEYS = ("lr", "trim_ratio", "round_epochs", "meta_lr", "C1", "C2", "T1")


def tuned_command(args: argparse.Namespace, out: Path, base: dict[str, Any]) -> list[str]:
    """The search CLI call of the tuned column (equal budget for every method)."""
    kind, rate = cells(args)[0]
    fixed = {"noise_rate": rate, "noise_type": kind, "train_size": base.get("train_size"),
             "valid_size": base.get("valid_size"), "pretrain_cache": base["pretrain_cache"]}
    for key in ("meta_per_class", "eval_train_rows", "weight_decay", "batch_size", "schedule", "optimizer",
                "itlm_form"):
        if key in base:
            fixed[key] = base[key]
    # DeCA(p)'s prior f' is the untuned normal model (the base lr), so every trial of a seed
    # shares one cached f' (the trial's own lr would make each trial train its own)
    fixed["pretrain_overrides"] = {"lr": float(base.get("lr", 0.01)), **(base.get("pretrain_overrides") or {})}
    cmd = [sys.executable, "-m", "deca_tune.search", "--datasets", args.dataset, "--backbones", args.backbone,
           "--methods", *args.methods, "--num-samples", str(args.tuned_samples),
           "--max-epochs", str(args.epochs), "--grace-period", str(args.tuned_grace),
           "--seeds", *map(str, args.seeds), "--max-concurrent", "1", "--cpus-per-trial", "1",
           "--storage-path", str(out), "--name", "tuned", "--verbose", "0"]
    if args.data_root:
        cmd += ["--data-root", str(args.data_root)]
    for key, value in fixed.items():
        if value is not None:
            cmd += ["--set", f"{key}={json.dumps(value) if isinstance(value, (str, dict)) else value}"]
    if (out / "tuned").exists():
        cmd.append("--resume")
    return cmd


def run_tuned(args: argparse.Namespace, out: Path, base: dict[str, Any]) -> int:
    cmd = tuned_command(args, out, base)
    print("tuned column:", " ".join(cmd), flush=True)
    (out / "tuned_command.txt").write_text(" ".join(cmd) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return run_child(cmd, env=env)  # stops (with its Ray) when this benchmark is stopped


def read_tuned(out: Path) -> pd.DataFrame | None:
    """Seed runs of the tuned searches (``out/tuned``, and any other ``out/tuned_*`` experiment,
    e.g. one method searched again over another space), with the last epoch's accuracy from the
    curves and the number of search trials per status; column ``experiment`` names the folder."""
    frames = []
    for folder in sorted(out.glob("tuned*/summary")):
        if not (folder / "seed_runs.csv").exists():
            continue
        runs = pd.read_csv(folder / "seed_runs.csv")
        if runs.empty:
            continue
        if "status" in runs:
            runs = runs[runs["status"] != "error"]
        curves = pd.read_csv(folder / "curves.csv") if (folder / "curves.csv").exists() else pd.DataFrame()
        if not curves.empty:
            last = (curves.sort_values("epoch").groupby(["method", "seed"]).tail(1)
                    [["method", "seed", "test_clean/accuracy"]].rename(columns={"test_clean/accuracy":
                                                                                 "test_clean_last/accuracy"}))
            runs = runs.merge(last, on=["method", "seed"], how="left")
        else:
            runs["test_clean_last/accuracy"] = math.nan
        trials = pd.read_csv(folder / "search_trials.csv") if (folder / "search_trials.csv").exists() else pd.DataFrame()
        if not trials.empty and "status" in trials:
            counts = trials.groupby(["method", "status"]).size().unstack(fill_value=0)
            for status in ("completed", "stopped", "error"):
                runs[f"n_{status}"] = runs["method"].map(counts[status] if status in counts else {}).fillna(0).astype(int)
        runs["experiment"] = folder.parent.name
        frames.append(runs)
    if not frames:
        return None
    runs = pd.concat(frames, ignore_index=True)

    def config_text(r: pd.Series) -> str:
        parts = []
        for k in TUNED_KEYS:
            v = r.get(f"config/{k}")
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
        return ", ".join(parts)

    runs["config_text"] = runs.apply(config_text, axis=1)
    return runs


# ------------------------------------------------------------------ timing
def run_timing(args: argparse.Namespace, out: Path) -> None:
    base = _base_spec(args)
    kind, rate = cells(args)[0]
    rows = []
    for method in args.methods:
        spec = {**base, "method": method, "seed": args.seeds[0], "noise_rate": rate, "noise_type": kind,
                "max_epochs": 1, "T1": 1, "round_epochs": 1, "pretrain_overrides": {"max_epochs": 1},
                "pretrain_cache": "off"}
        trainer = ImageTrainer(_only_known(spec))
        m = trainer.train_epoch()
        n = m["train_rows"]
        rows.append({"method": method, "backbone": args.backbone, "train_images": n,
                     "train_seconds": m["train_seconds"], "ms_per_train_image": 1000 * m["train_seconds"] / n,
                     "eval_seconds": m["epoch_seconds"] - m["train_seconds"],
                     "est_full_epoch_train_seconds_49k": 49 * 1000 * m["train_seconds"] / n})
        print(json.dumps(rows[-1]), flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(out / f"timing_{args.backbone}.csv", index=False)
    print(df.to_string(index=False))


def per_image_costs(backbones: Sequence[str], channels: int = 1, size: int = 28, batch: int = 100,
                    steps: int = 4, eval_images: int = 1000, memory_formats: Sequence[str] = ("contiguous", "auto"),
                    repeats: int = 3, bf16: bool = False) -> list[dict[str, Any]]:
    """Milliseconds of CPU time per image of a plain ``normal`` step (forward, backward, SGD with
    momentum; ``batch`` images) and of evaluation (inference mode, batches of 250) for each
    backbone and memory format, measured as process CPU time (robust to other processes sharing
    the core), interleaved over ``repeats`` rounds (the minimum is reported). ``bf16`` adds a
    channels-last bfloat16-autocast case for the convolutional networks (spec ``precision: bf16``)."""
    import contextlib

    import torch.nn.functional as F

    from deca_tune.models.image import apply_memory_format, build_image_backbone, count_flops

    cases = []
    for name in backbones:
        flops = count_flops(build_image_backbone(name, 10, channels, size), (channels, size, size))
        seen = set()
        for fmt in memory_formats:
            torch.manual_seed(0)
            model = apply_memory_format(build_image_backbone(name, 10, channels, size), fmt)
            cl = fmt == "channels_last" or (fmt == "auto" and any(isinstance(m, torch.nn.Conv2d)
                                                                    for m in model.modules()))
            if cl in seen:  # "auto" on a network without convolutions is "contiguous" again
                continue
            seen.add(cl)
            layout = torch.channels_last if cl else torch.contiguous_format
            for precision in ("fp32", "bf16") if (bf16 and cl) else ("fp32",):
                if precision == "bf16":
                    torch.manual_seed(0)
                    model = apply_memory_format(build_image_backbone(name, 10, channels, size), fmt)
                opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
                x = torch.randn(batch, channels, size, size).contiguous(memory_format=layout)
                xe = torch.randn(eval_images, channels, size, size).contiguous(memory_format=layout)
                y = torch.randint(0, 10, (batch,))
                cases.append({"name": name, "fmt": "channels_last" if cl else "contiguous", "model": model,
                              "precision": precision, "opt": opt, "x": x, "xe": xe, "y": y, "flops": flops,
                              "train": [], "eval": []})

    def cast(c: dict[str, Any]) -> Any:
        if c["precision"] == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_steps(c: dict[str, Any], n: int) -> None:
        c["model"].train()
        for _ in range(n):
            with cast(c):
                loss = F.cross_entropy(c["model"](c["x"]), c["y"])
            c["opt"].zero_grad(set_to_none=True)
            loss.backward()
            c["opt"].step()

    def evaluate(c: dict[str, Any]) -> None:
        c["model"].eval()
        with torch.inference_mode(), cast(c):
            for lo in range(0, eval_images, 250):
                c["model"](c["xe"][lo:lo + 250])

    for c in cases:  # warm-up (oneDNN primitive creation)
        train_steps(c, 2)
        evaluate(c)
    for _ in range(repeats):
        for c in cases:
            t = time.process_time()
            train_steps(c, steps)
            c["train"].append(1000 * (time.process_time() - t) / (steps * batch))
            t = time.process_time()
            evaluate(c)
            c["eval"].append(1000 * (time.process_time() - t) / eval_images)
    rows = []
    for c in cases:
        train_ms = min(c["train"])
        rows.append({"backbone": c["name"], "input": f"{channels}x{size}x{size}", "memory_format": c["fmt"],
                     "precision": c["precision"], "batch": batch, "train_ms_per_image": round(train_ms, 3),
                     "eval_ms_per_image": round(min(c["eval"]), 3),
                     "gflop_per_image_fwd_bwd": round(c["flops"] / 1e9, 4),
                     "gflop_per_s": round(c["flops"] / 1e9 / (train_ms / 1000), 1)})
    return rows


def gemm_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Single-matrix-product fp32 GFLOP/s of the current threads, by process CPU time."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    best = math.inf
    for _ in range(repeats):
        t = time.process_time()
        for _ in range(3):
            a @ b
        best = min(best, (time.process_time() - t) / 3)
    return 2 * n ** 3 / best / 1e9


# ------------------------------------------------------------------ main
def _manifest(args: argparse.Namespace, base: dict[str, Any], kind: str, argv: Sequence[str],
              finished: bool) -> dict[str, Any]:
    return {"command": "python -m deca_tune.bench images " + " ".join(argv), "argv": list(argv),
            "task": "image", "datasets": [args.dataset], "backbones": [args.backbone], "methods": list(args.methods),
            "seeds": list(args.seeds), "noise_type": kind, "noise_rates": sorted(args.rates),
            "selection_metric": {"image": "valid/accuracy"}, "config": base, "preset": args.preset,
            "torch_threads": torch.get_num_threads(), "finished": finished,
            "written_at": time.strftime("%Y-%m-%d %H:%M:%S")}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = resolve_options(build_parser().parse_args(argv))
    argv = [a for a in argv if a != "--tables-only"]  # the command that ran (and resumes) the runs
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.per_image is not None:
        names = args.per_image or ["mlp", "convnet", "inception", "resnet32"]
        channels, height, _width = (int(v) for v in args.input.lower().split("x"))
        rows = per_image_costs(names, channels=channels, size=height, bf16=args.bf16)
        gemm = gemm_gflops()
        load = os.getloadavg()
        for r in rows:
            r["gemm_gflop_per_s"] = round(gemm, 1)
            r["load_average_1min"] = round(load[0], 2)
            print(json.dumps(r), flush=True)
        pd.DataFrame(rows).to_csv(out / f"per_image_{args.input}.csv", index=False)
        return 0
    if args.timing:
        run_timing(args, out)
        return 0
    base = _base_spec(args)
    plan = cells(args)
    records: dict[tuple[str, float], list[dict[str, Any]]] = {c: [] for c in plan}
    start = time.perf_counter()
    tuned_rc: int | None = None

    def refresh(finished: bool = False) -> None:
        for kind in args.noise_types:
            recs = [r for (k, _), rs in records.items() if k == kind for r in rs]
            if recs:
                write_experiment(out / kind, recs, _manifest(args, base, kind, argv, finished))
        every = [r for rs in records.values() for r in rs]
        md, tidy = bench_tables(every, args, read_tuned(out))
        header = (f"# {args.dataset}, {args.backbone}, {args.epochs} epochs, {base.get('train_size') or 'all'} training "
                  f"images, seeds {' '.join(map(str, args.seeds))}\n\nCommand: `python -m deca_tune.bench images "
                  f"{' '.join(argv)}`\n\n")
        (out / "tables.md").write_text(header + md)
        tidy.to_csv(out / "tables.csv", index=False)

    if args.tables_only:
        for kind, rate in plan:
            for seed in args.seeds:
                for method in args.methods:
                    path = run_path(out, kind, rate, method, seed)
                    if path.exists():
                        records[(kind, rate)].append(json.loads(path.read_text()))
        refresh(finished=False)
        print((out / "tables.md").read_text())
        return 0
    for i, (kind, rate) in enumerate(plan):
        for seed in args.seeds:
            for method in args.methods:
                spec = {**base, "method": method, "seed": seed, "noise_rate": rate, "noise_type": kind}
                path = run_path(out, kind, rate, method, seed)
                fresh = not path.exists()
                rec = run_cached(spec, path)
                records[(kind, rate)].append(rec)
                if fresh:
                    r = rec["row"]
                    print(json.dumps({"noise_type": kind, "noise_rate": rate, **{k: v for k, v in r.items()
                                                                                 if k != "best"}}), flush=True)
                    refresh()
        if i == 0 and args.tuned_samples and args.tuned_first:
            tuned_rc = run_tuned(args, out, base)
    if args.tuned_samples and not args.tuned_first:
        tuned_rc = run_tuned(args, out, base)
    refresh(finished=True)
    print((out / "tables.md").read_text())
    print(f"total {time.perf_counter() - start:.0f} s this invocation", flush=True)
    if tuned_rc not in (None, 0):
        print(f"the tuned search exited with status {tuned_rc}; rerun the same command to resume it", file=sys.stderr)
        return int(tuned_rc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
