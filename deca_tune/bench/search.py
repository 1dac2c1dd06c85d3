"""``python -m deca_tune.bench search [default] [overhead] [efficiency] [options]``.

- ``default``: wall time of ``python -m deca_tune.search`` with no options (the default
  experiment), measured around the whole command (Ray start-up included).
- ``overhead``: a 16-trial search (ML-100K, GMF, ``normal``, FIFO so every trial runs all its
  epochs). Tune overhead = search wall time x concurrency / sum of trial times (Tune's
  ``time_total_s``, trainer set-up included); also against the sum of pure epoch seconds.
- ``efficiency``: ML-100K, GMF, ``deca``: Optuna (TPE) + ASHA with 32 trials against the paper
  grid over (C0, C1, alpha) = 4 x 4 x 3 = 48 configurations, both with lr = 1e-3 and one l2
  fixed (by default the best l2 of a 6-point grid search of ``normal``, the paper's l2 grid), the
  same max epochs. Reports the best validation NDCG@20 each reaches and the epochs each spends.
  ``--full-grid`` searches l2 as well (the paper's 288 configurations).
- ``overlap``: slot use of one small preset-shaped experiment (``--overlap-dataset``, default
  ``modcloth-paper``, paper protocol; GMF ``normal`` and ``deca``; 4 trials x 3 epochs with ASHA;
  seeds 0 1) run with ``--overlap 1`` (one unit after another) and ``--overlap 2``: wall time,
  the trials' own seconds over the slots, and their ratio (the manifest's ``slot_use``; issue 22
  wants <= 1.15).

Every run is a real experiment folder under ``--storage-path`` (default ``results/bench``);
the numbers are printed as Markdown and saved to ``<storage>/bench-search.json``. The machine's
load average is recorded before and after each run: on a shared machine, say how loaded it was.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd


def _load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def _search(argv: list[str], storage: Path, name: str, data_root: str | None) -> dict[str, Any]:
    """Run ``python -m deca_tune.search`` as a user would; return timing and the folder."""
    cmd = [sys.executable, "-m", "deca_tune.search", *argv, "--storage-path", str(storage),
           "--name", name, "--verbose", "0"]
    if data_root:
        cmd += ["--data-root", data_root]
    load_before = _load()
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                           f"{done.stderr[-3000:]}")
    exp = storage / name
    manifest = json.loads((exp / "manifest.json").read_text())
    return {"command": " ".join(cmd[1:]), "wall_seconds": wall, "load_before": load_before,
            "load_after": _load(), "experiment": str(exp), "manifest": manifest,
            "stdout_tail": done.stdout[-2500:]}


def _trial_results(exp: Path) -> list[list[dict]]:
    out = []
    for path in sorted((exp / "search").glob("*/*/result.json")):
        out.append([json.loads(line) for line in path.read_text().splitlines()])
    return out


def bench_default(storage: Path, data_root: str | None) -> dict[str, Any]:
    run = _search([], storage, f"default-{int(time.time())}", data_root)
    m = run.pop("manifest")
    table = run["stdout_tail"].split("test clean metrics", 1)[-1].split("\nresults:", 1)[0]
    return {**run, "experiment_seconds": m.get("wall_seconds"), "timing": m["timing"],
            "table": "test clean metrics" + table, "stdout_tail": None}


def bench_overhead(storage: Path, data_root: str | None, epochs: int) -> dict[str, Any]:
    run = _search(["--methods", "normal", "--num-samples", "16", "--max-epochs", str(epochs),
                   "--scheduler", "fifo", "--seeds", "0"], storage, f"overhead-{int(time.time())}",
                  data_root)
    m = run.pop("manifest")
    (timing,) = m["timing"].values()
    conc = m["resources"]["concurrency"]
    trials = _trial_results(Path(run["experiment"]))
    epoch_seconds = sum(r["epoch_seconds"] for t in trials for r in t)
    setup_seconds = sum(t[-1]["setup_seconds"] for t in trials)
    return {**run, "stdout_tail": None, "trials": len(trials), "concurrency": conc,
            "search_wall_seconds": timing["search_seconds"],
            "sum_trial_seconds": timing["search_trial_seconds"],
            "sum_epoch_seconds": epoch_seconds, "sum_setup_seconds": setup_seconds,
            "overhead_vs_trial_time": timing["search_seconds"] * conc / timing["search_trial_seconds"],
            "overhead_vs_epoch_time": timing["search_seconds"] * conc / epoch_seconds}


def _best(exp: Path) -> dict[str, Any]:
    trials = pd.read_csv(exp / "summary/search_trials.csv")
    best = trials[trials["is_best"]].iloc[0]
    runs = pd.read_csv(exp / "summary/seed_runs.csv")
    params = [c for c in ("config/C0", "config/C1", "config/alpha", "config/l2", "config/lr")
              if c in trials]
    return {"trials": len(trials), "errors": int((trials["status"] == "error").sum()),
            "stopped_by_asha": int((trials["status"] == "stopped").sum()),
            "epochs_spent": int(trials["epochs"].sum()),
            "best_valid_ndcg@20": float(best["score"]), "best_epoch": int(best["best_epoch"]),
            "best_config": {p.split("/", 1)[1]: float(best[p]) for p in params},
            # informational only: nothing was selected on it
            "rerun_seed0_test_clean_ndcg@20": float(runs["test_clean/ndcg@20"].iloc[0]),
            "top5_valid_ndcg@20": sorted(trials["score"].dropna(), reverse=True)[:5]}


def bench_efficiency(storage: Path, data_root: str | None, epochs: int, l2: float | None,
                     full_grid: bool, grace: int) -> dict[str, Any]:
    stamp = int(time.time())
    out: dict[str, Any] = {"max_epochs": epochs}
    fixed = ["--set", "lr=0.001"]
    if not full_grid:
        if l2 is None:
            run = _search(["--methods", "normal", "--search", "grid", "--set", "lr=0.001",
                           "--max-epochs", str(epochs), "--seeds", "0"], storage,
                          f"eff-l2-{stamp}", data_root)
            out["l2_search"] = {**_best(Path(run["experiment"])), "wall_seconds": run["wall_seconds"],
                                "load_before": run["load_before"], "load_after": run["load_after"]}
            l2 = out["l2_search"]["best_config"]["l2"]
        fixed += ["--set", f"l2={l2}"]
        out["fixed_l2"] = l2
    common = ["--methods", "deca", "--max-epochs", str(epochs), "--seeds", "0", *fixed]
    for label, extra in (("optuna_asha_32", ["--num-samples", "32", "--grace-period", str(grace),
                                             "--reduction-factor", "2"]),
                         ("grid", ["--search", "grid"])):
        run = _search([*common, *extra], storage, f"eff-{label}-{stamp}", data_root)
        out[label] = {**_best(Path(run["experiment"])), "wall_seconds": run["wall_seconds"],
                      "load_before": run["load_before"], "load_after": run["load_after"],
                      "command": run["command"], "experiment": run["experiment"]}
    return out


def bench_overlap(storage: Path, data_root: str | None, dataset: str,
                  overlaps: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    """The same experiment at each ``--overlap``: wall, trial seconds / slots, ratio."""
    out: dict[str, Any] = {}
    for overlap in overlaps:
        run = _search(["--datasets", dataset, "--protocol", "paper", "--backbones", "gmf",
                       "--methods", "normal,deca", "--num-samples", "4", "--max-epochs", "3",
                       "--seeds", "0", "1", "--overlap", str(overlap)], storage,
                      f"overlap{overlap}-{int(time.time())}", data_root)
        m = run.pop("manifest")
        use = m["slot_use"]
        out[f"overlap{overlap}"] = {
            "command": run["command"], "wall_seconds": use["wall_seconds"],
            "trial_seconds": use["trial_seconds"], "slots": use["slots"],
            "ideal_wall_seconds": use["ideal_wall_seconds"], "ratio": use["ratio"],
            "command_seconds": run["wall_seconds"], "load_before": run["load_before"],
            "load_after": run["load_after"], "experiment": run["experiment"]}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deca_tune.bench search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", nargs="*", default=["default", "overhead", "efficiency"],
                   choices=["default", "overhead", "efficiency", "overlap"])
    p.add_argument("--storage-path", default="results/bench")
    p.add_argument("--data-root", default=None)
    p.add_argument("--epochs", type=int, default=10, help="max epochs (overhead, efficiency)")
    p.add_argument("--grace-period", type=int, default=2, help="ASHA grace period (efficiency)")
    p.add_argument("--l2", type=float, default=None,
                   help="fix l2 for the efficiency runs (default: best of a normal l2 grid)")
    p.add_argument("--full-grid", action="store_true", help="efficiency: search l2 too (288 configs)")
    p.add_argument("--overlap-dataset", default="modcloth-paper", help="overlap: the data set")
    args = p.parse_args(argv)
    storage = Path(args.storage_path).resolve()
    storage.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if "default" in args.which:
        report["default"] = bench_default(storage, args.data_root)
        print(f"default experiment: {report['default']['wall_seconds']:.0f} s wall "
              f"(load {report['default']['load_before']} -> {report['default']['load_after']})")
        print(report["default"]["table"])
    if "overhead" in args.which:
        o = report["overhead"] = bench_overhead(storage, args.data_root, args.epochs)
        print(f"\n16-trial search: wall {o['search_wall_seconds']:.1f} s x concurrency {o['concurrency']} / "
              f"sum of trial times {o['sum_trial_seconds']:.1f} s = {o['overhead_vs_trial_time']:.2f} "
              f"(vs pure epoch time {o['sum_epoch_seconds']:.1f} s: {o['overhead_vs_epoch_time']:.2f}); "
              f"load {o['load_before']} -> {o['load_after']}")
    if "efficiency" in args.which:
        e = report["efficiency"] = bench_efficiency(storage, args.data_root, args.epochs, args.l2,
                                                    args.full_grid, args.grace_period)
        print("\n| search | trials | epochs spent | best valid NDCG@20 | best config | wall s | load |")
        print("|---|---|---|---|---|---|---|")
        for label in ("optuna_asha_32", "grid"):
            r = e[label]
            print(f"| {label} | {r['trials']} | {r['epochs_spent']} | {r['best_valid_ndcg@20']:.4f} | "
                  f"{r['best_config']} | {r['wall_seconds']:.0f} | {r['load_before']} -> {r['load_after']} |")
    if "overlap" in args.which:
        v = report["overlap"] = bench_overlap(storage, args.data_root, args.overlap_dataset)
        print("\n| --overlap | wall s | trial s | slots | wall / (trial s / slots) | load |")
        print("|---|---|---|---|---|---|")
        for key, r in v.items():
            print(f"| {key[7:]} | {r['wall_seconds']:.1f} | {r['trial_seconds']:.1f} | {r['slots']} | "
                  f"{r['ratio']:.2f} | {r['load_before']} -> {r['load_after']} |")
    out = storage / "bench-search.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    previous.update({k: v for k, v in report.items()})
    out.write_text(json.dumps(previous, indent=2, default=str))
    print(f"\nsaved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
