"""Denoising benchmark (issue 3): GMF on ``ml-100k`` and ``ml-100k-paper`` with ``normal``,
``deca``, ``deca_p``, ``tce``, ``rce``, ``wbpr``, ``ensemble``, 3 seeds each, the DeCA authors' ML-100K GMF
hyperparameters (C0 = C1 = 1000, alpha = 1, lambda = 0.1, 20 epochs, lr 1e-3, batch 2048, one
negative per positive).

Printed and written to ``docs/benchmarks-denoising.md``: clean-test Recall@K / NDCG@K (mean +- std
over seeds) of the last epoch (the authors' protocol: 20 epochs, no selection) and of the epoch
selected on validation NDCG@20 (noisy validation for ``ml-100k``, clean validation under the
``paper`` protocol for ``ml-100k-paper``), the noise-detection ROC-AUC of the last-epoch model
(clean = rating >= 4 vs noisy = rating <= 2 training positives; score: Eq. 25 for DeCA, f for
DeCA(p), the mean probability for the ensemble, sigmoid(f) otherwise) and the training seconds
per epoch relative to ``normal`` (evaluation excluded).

Lambda: the loop adds ``l2 / (2 n_users) * ||theta||^2`` (target model only) and ``normal``'s BCE
is the mean over positives plus the mean over negatives, both the authors' scaling, so ``l2`` is
the authors' lambda for every method (also for DeCA(p)'s f' and the ensemble's twin).

``python -m deca_tune.bench denoising [--datasets ...] [--methods ...] [--seeds 0 1 2]``; results
are appended to a JSON file as runs finish, and a rerun skips the runs it already holds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deca_tune.bench.formatting import mean_std

DATASETS = {"ml-100k": "default", "ml-100k-paper": "paper"}
METHODS = ["normal", "deca", "deca_p", "tce", "rce", "wbpr", "ensemble"]
AUTHORS_GMF_ML100K = {"C0": 1000.0, "C1": 1000.0, "alpha": 1.0, "lambda": 0.1, "epochs": 20,
                      "lr": 1e-3, "batch_size": 2048, "neg_ratio": 1}
#: T-CE has no authors' ML-100K setting: drop up to 20% (T-CE default), reached after ~10 epochs
TCE = {"drop_rate": 0.2, "num_gradual": 400}
KS = (5, 20)
#: issue 3 reference (the authors' code on their split with their protocol, 5 seeds)
REFERENCE = {
    "paper Table 2": {"normal": (0.095, None, 0.059, None), "deca": (0.109, None, 0.064, None),
                      "deca_p": (0.099, None, 0.066, None)},
    "authors' code, 5 seeds": {"normal": (0.0942, 0.0022, 0.0600, 0.0013),
                               "deca": (0.1065, 0.0024, 0.0635, 0.0017),
                               "deca_p": (0.1021, 0.0049, 0.0606, 0.0021)},
}
REPO = Path(__file__).resolve().parents[2]
CURVE_KEYS = ("epoch", "loss", "train_seconds", "valid/ndcg@20", "valid_clean/ndcg@20",
              "test_clean/recall@20", "test_clean/ndcg@20")


def run_spec(dataset: str, method: str, seed: int, epochs: int, data_root: str | None,
             cache: str) -> dict[str, Any]:
    hp = AUTHORS_GMF_ML100K
    base = method.split("@")[0]
    spec = {"dataset": dataset, "protocol": DATASETS.get(dataset, "default"), "backbone": "gmf",
            "method": base, "seed": seed, "max_epochs": epochs, "lr": hp["lr"],
            "batch_size": hp["batch_size"], "neg_ratio": hp["neg_ratio"], "patience": 0,
            "l2": hp["lambda"], "data_root": data_root, "device": "cpu",
            "pretrain_cache": cache}
    if base.startswith("deca"):
        spec.update(C0=hp["C0"], C1=hp["C1"], alpha=hp["alpha"])
    if base == "tce":
        spec.update(TCE)
    if method.endswith(AUTHORS_SAMPLER_SUFFIX):
        spec["sampler"] = "uniform-unrejected"
    return spec


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one configuration; metrics of the last and of the selected epoch, noise AUC, time."""
    from deca_tune.methods.scores import noise_detection_scores
    from deca_tune.training.rec_trainer import RecTrainer

    start = time.perf_counter()
    trainer = RecTrainer(spec)
    setup_s = time.perf_counter() - start
    curves = []
    while not trainer.finished:
        curves.append(trainer.train_epoch())
    last = curves[-1]
    noise_last = noise_detection_scores(trainer.method, trainer.split)
    trainer.method.load_state_dict(trainer.best_state)
    noise_best = noise_detection_scores(trainer.method, trainer.split)
    pick = lambda m: {k: v for k, v in m.items() if k.startswith("test_clean/")  # noqa: E731
                      or k.startswith("deca/") or k in ("epoch", "loss")}
    info = trainer.pretrain_info
    return {
        "spec": spec, "last": pick(last), "selected": pick(trainer.best),
        "selected_epoch": int(trainer.best["epoch"]), "selection_metric": trainer.selection_metric,
        "noise_last": noise_last, "noise_selected": noise_best,
        "train_seconds_per_epoch": statistics.mean(c["train_seconds"] for c in curves),
        "epoch_seconds": statistics.mean(c["epoch_seconds"] for c in curves),
        "setup_seconds": setup_s, "pretrain": {k: info.get(k) for k in ("cached", "seconds", "seed")},
        "curves": [{k: v for k, v in c.items() if k in CURVE_KEYS or k.startswith("deca/")} for c in curves],
    }


#: the planted-noise check of issue 3 (tests/test_rec_denoising_synthetic.py runs seed 0 of it):
#: uniformly random noisy clicks, GMF trained long enough for ``normal`` to memorise them
SYNTHETIC_DATA = {"pop_skew": 0.0, "n_users": 300, "n_items": 200, "noise_rate": 0.25}
SYNTHETIC_TRAIN = {"backbone": "gmf", "max_epochs": 20, "batch_size": 512, "lr": 0.01, "l2": 0.0,
                   "C0": 1000.0, "C1": 1000.0, "alpha": 1.0, "device": "cpu"}
SYNTHETIC_METHODS = ["normal", "deca", "deca_p"]


def synthetic_spec(method: str, data_seed: int, seed: int, cache: str,
                   pop_skew: float | None = None) -> dict[str, Any]:
    data = {**SYNTHETIC_DATA, "seed": data_seed}
    if pop_skew is not None:
        data["pop_skew"] = float(pop_skew)
    from deca_tune.tasks import get_task

    return get_task("rec").only_known({"dataset": "synthetic", "dataset_options": data, "method": method,
                                       "seed": seed, "pretrain_cache": cache, **SYNTHETIC_TRAIN})


def _synthetic_key(pop_skew: float, data_seed: int, method: str, seed: int) -> str:
    return _key(f"synthetic pop_skew {pop_skew:g} data seed {data_seed}", method, seed)


def summarise_synthetic(results: dict[str, Any]) -> str:
    """Planted-noise AUC per noise setting and method: last and selected epoch, over all runs."""
    if not results:
        return ""
    train = {k: v for k, v in SYNTHETIC_TRAIN.items() if k != "device"}
    lines = ["### synthetic, planted noise (GMF)", "",
             f"Data {SYNTHETIC_DATA} with the `pop_skew` below (0: noisy clicks uniformly random "
             f"among disliked items; 1: proportional to popularity), training {train}. Noise AUC = "
             "ROC-AUC of the method's P(real positive) (Eq. 25 for DeCA, f for DeCA(p), sigmoid(f) "
             "for normal) separating planted-clean from planted-noisy training positives; last epoch "
             "= fixed budget, selected = best noisy-validation NDCG@20.", "",
             "| pop_skew | method | runs | AUC last epoch | AUC selected epoch | beats normal (last) | "
             "N@20 last | N@20 selected |", "|---|---|---|---|---|---|---|---|"]
    settings = sorted({k.split("|")[0].split(" data seed")[0] for k in results})
    for setting in settings:
        for m in SYNTHETIC_METHODS:
            rs = {k: r for k, r in results.items()
                  if k.split("|")[1] == m and k.split("|")[0].split(" data seed")[0] == setting}
            if not rs:
                continue
            wins = None
            if m != "normal":
                pairs = [(r, results.get(k.replace(f"|{m}|", "|normal|"))) for k, r in rs.items()]
                wins = f"{sum(n is not None and r['noise_last']['noise_auc'] > n['noise_last']['noise_auc'] for r, n in pairs)} of {len(pairs)}"
            lines.append(
                f"| {setting.split('pop_skew ')[1]} | {m} | {len(rs)} | "
                f"{mean_std([r['noise_last']['noise_auc'] for r in rs.values()], 3)} | "
                f"{mean_std([r['noise_selected']['noise_auc'] for r in rs.values()], 3)} | {wins or '-'} | "
                f"{mean_std([r['last']['test_clean/ndcg@20'] for r in rs.values()], 3)} | "
                f"{mean_std([r['selected']['test_clean/ndcg@20'] for r in rs.values()], 3)} |")
    seeds = sorted({f"{k.split('|')[0].split('data seed ')[1]}/{k.split('|')[2]}" for k in results})
    lines += ["", "Runs per row: data seed / model seed " + ", ".join(seeds) + ".", ""]
    return "\n".join(lines)


#: a method name with this suffix runs the method with the ``uniform-unrejected`` sampler (what
#: the DeCA authors' sampler does under current scipy, see issue 3): an investigation variant
AUTHORS_SAMPLER_SUFFIX = "@authors-sampler"


def _key(dataset: str, method: str, seed: int) -> str:
    return f"{dataset}|{method}|{seed}"


def summarise(results: dict[str, Any], datasets: list[str], methods: list[str], epochs: int) -> str:
    """Markdown tables: one per data set, plus the reference values."""
    lines: list[str] = []
    for ds in datasets:
        runs = {m: [r for k, r in results.items() if k.startswith(f"{ds}|{m}|")] for m in methods}
        if not any(runs.values()):
            continue
        normal_t = statistics.mean(r["train_seconds_per_epoch"] for r in runs.get("normal", [])) \
            if runs.get("normal") else None
        proto = DATASETS.get(ds, "default")
        sel = "clean validation" if proto == "paper" else "noisy validation"
        lines += [f"### {ds} (protocol `{proto}`), GMF", "",
                  f"Last epoch = epoch {epochs} (the authors' protocol); selected = best "
                  f"NDCG@20 on the {sel}. Noise AUC: clean (rating >= 4) vs noisy (rating <= 2) "
                  "training positives, last-epoch model (selected-epoch model in brackets).", "",
                  "| method | seeds | R@5 last | R@20 last | N@5 last | N@20 last | R@20 selected | "
                  "N@20 selected | noise AUC | train s/epoch | x normal |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for m in methods:
            rs = runs[m]
            if not rs:
                continue
            base = m.split("@")[0]
            col = lambda part, name: mean_std([r[part][f"test_clean/{name}"] for r in rs])  # noqa: E731
            auc = mean_std([r["noise_last"]["noise_auc"] for r in rs], 3)
            auc_sel = statistics.mean(r["noise_selected"]["noise_auc"] for r in rs)
            t = statistics.mean(r["train_seconds_per_epoch"] for r in rs)
            rel = f"{t / normal_t:.2f}" if normal_t else "-"
            if base == "deca_p":
                rel += " (+ one normal run for f')"
            lines.append(f"| {m} | {len(rs)} | {col('last', 'recall@5')} | {col('last', 'recall@20')} | "
                         f"{col('last', 'ndcg@5')} | {col('last', 'ndcg@20')} | "
                         f"{col('selected', 'recall@20')} | {col('selected', 'ndcg@20')} | "
                         f"{auc} ({auc_sel:.3f}) | {t:.2f} | {rel} |")
        lines.append("")
    lines += ["### Reference (ML-100K, GMF, the authors' split and protocol; R@20 / N@20)", "",
              "| source | normal | deca | deca_p |", "|---|---|---|---|"]
    for src, vals in REFERENCE.items():
        cells = []
        for m in ("normal", "deca", "deca_p"):
            r, rs, n, ns = vals[m]
            cells.append(f"{r:.4f}" + (f" ± {rs:.4f}" if rs else "") + f" / {n:.4f}" + (f" ± {ns:.4f}" if ns else ""))
        lines.append(f"| {src} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deca_tune.bench denoising", description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=AUTHORS_GMF_ML100K["epochs"])
    p.add_argument("--data-root", default=None, help="data root (default: $DECA_TUNE_DATA or ~/.cache/deca_tune)")
    p.add_argument("--results", default=str(REPO / "docs" / "benchmarks-denoising.json"),
                   help="JSON file the runs are appended to (and resumed from)")
    p.add_argument("--out", default=str(REPO / "docs" / "benchmarks-denoising.md"),
                   help="Markdown output ('-' prints only)")
    p.add_argument("--pretrain-cache", default=None,
                   help="cache of pre-trained f' (default: a fresh temporary folder, so the cost is measured)")
    p.add_argument("--fresh", action="store_true", help="ignore runs already in --results")
    p.add_argument("--synthetic", action="store_true",
                   help="also run the planted-noise study on 'synthetic' (normal, deca, deca_p; data "
                        "seeds from --synthetic-data-seeds x --seeds)")
    p.add_argument("--synthetic-data-seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--synthetic-pop-skews", nargs="+", type=float, default=[0.0, 1.0])
    p.add_argument("--authors-sampler", action="store_true",
                   help="also run each method with negatives that may be the user's positives "
                        "(the authors' sampler), as '<method>@authors-sampler'")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: these models are tiny, and on a shared "
                        "2-core machine more threads made GMF epochs ~10x slower)")
    args = p.parse_args(argv)
    for ds in args.datasets:
        if ds not in DATASETS:
            p.error(f"--datasets: {ds!r} is not one of {', '.join(DATASETS)}")

    results_path = Path(args.results)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    synthetic: dict[str, Any] = {}
    results: dict[str, Any] = {}
    if results_path.exists() and not args.fresh:
        saved = json.loads(results_path.read_text())
        results, synthetic = saved.get("runs", {}), saved.get("synthetic", {})
    cache = args.pretrain_cache or tempfile.mkdtemp(prefix="deca_tune_bench_pretrained_")
    header = {"python": platform.python_version(), "machine": platform.machine(),
              "cpus": os.cpu_count(), "command": "python -m deca_tune.bench denoising " + " ".join(argv or [])}
    import torch

    old_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args, argv, results_path, results, synthetic, cache, header)
    finally:
        torch.set_num_threads(old_threads)
        if args.pretrain_cache is None:
            shutil.rmtree(cache, ignore_errors=True)


def _run(args: argparse.Namespace, argv: list[str] | None, results_path: Path, results: dict[str, Any],
         synthetic: dict[str, Any], cache: str, header: dict[str, Any]) -> int:
    import torch

    header["torch"] = torch.__version__
    header["threads"] = torch.get_num_threads()
    order = sorted(args.methods, key=lambda m: METHODS.index(m) if m in METHODS else 99)
    if args.authors_sampler:
        order = order + [m + AUTHORS_SAMPLER_SUFFIX for m in order]
    for ds in args.datasets:
        for seed in args.seeds:
            for method in order:
                key = _key(ds, method, seed)
                if key in results:
                    continue
                spec = run_spec(ds, method, seed, args.epochs, args.data_root, cache)
                res = run_one(spec)
                results[key] = res
                results_path.parent.mkdir(parents=True, exist_ok=True)
                results_path.write_text(json.dumps({"header": header, "runs": results,
                                                    "synthetic": synthetic}, indent=1))
                print(f"{key}: R@20 last {res['last']['test_clean/recall@20']:.4f} N@20 last "
                      f"{res['last']['test_clean/ndcg@20']:.4f} | selected epoch {res['selected_epoch']} "
                      f"R@20 {res['selected']['test_clean/recall@20']:.4f} | noise AUC "
                      f"{res['noise_last']['noise_auc']:.3f} | {res['train_seconds_per_epoch']:.2f} s/epoch",
                      flush=True)
    if args.synthetic:
        grid = [(ps, ds, s) for ps in args.synthetic_pop_skews for ds in args.synthetic_data_seeds
                for s in args.seeds]
        for pop_skew, data_seed, seed in grid:
            for method in SYNTHETIC_METHODS:
                key = _synthetic_key(pop_skew, data_seed, method, seed)
                if key in synthetic:
                    continue
                res = run_one(synthetic_spec(method, data_seed, seed, cache, pop_skew))
                synthetic[key] = res
                results_path.write_text(json.dumps({"header": header, "runs": results,
                                                    "synthetic": synthetic}, indent=1))
                print(f"{key}: noise AUC last {res['noise_last']['noise_auc']:.3f} selected "
                      f"{res['noise_selected']['noise_auc']:.3f}", flush=True)
    shown = [m for m in METHODS if any(k.split("|")[1] == m for k in results)]
    shown += sorted({k.split("|")[1] for k in results} - set(shown))
    datasets = [d for d in DATASETS if any(k.split("|")[0] == d for k in results)]
    table = summarise(results, datasets, shown, args.epochs) + "\n" + summarise_synthetic(synthetic)
    print(table)
    if args.out != "-":
        out = Path(args.out)
        intro = (f"# Denoising benchmark (GMF, ML-100K)\n\nGenerated by `python -m deca_tune.bench denoising` "
                 f"(deca_tune/bench/denoising.py; settings in its docstring). "
                 f"Machine: {header['cpus']} CPUs, torch {header['torch']} ({header['threads']} threads), "
                 f"shared with other jobs, so seconds are noisy.\n\n")
        notes = out.with_suffix(".notes.md")
        extra = notes.read_text() if notes.exists() else ""
        out.write_text(intro + table + ("\n" + extra if extra else ""))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
