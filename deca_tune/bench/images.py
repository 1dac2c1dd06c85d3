"""Image benchmark: clean test accuracy and time per epoch of normal / itlm / mwnet / deca_p.

``python -m deca_tune.bench images [--dataset fashion-mnist --noise 0.4 --backbone convnet
--epochs 20 --seeds 0 1 2 --train-size N --out DIR --set key=value ...]``

For every (method, seed) it trains with :class:`~deca_tune.training.image_trainer.ImageTrainer`
and records the clean test accuracy of the last epoch ("final") and of the epoch with the best
*noisy* validation accuracy ("best"), and the seconds per epoch (DeCA(p)'s pre-training of ``f'``
is reported separately). It writes ``runs.csv`` (one row per run), ``curves.csv`` (one row per
epoch), ``summary.csv`` and ``summary.md`` (mean +- std over seeds) into ``--out``.

``--timing`` instead runs one epoch per method on ``--train-size`` images and reports the
training seconds per 1,000 images and an estimate for a full epoch (ResNet-32 on a CPU).
Hyperparameters are the spec defaults (no tuning) unless ``--set`` overrides them.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from deca_tune.options import key_value, nested
from deca_tune.training.image_trainer import ImageTrainer

METHODS = ("normal", "itlm", "mwnet", "deca_p")
#: Fashion-MNIST 40% symmetric noise, ResNet-32, Table 4 of the paper (clean test accuracy, %)
PAPER_FMNIST_40 = {"normal": 84.89, "mwnet": 86.18, "itlm": 87.10, "deca_p": 88.72}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deca_tune.bench images", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--backbone", default="convnet")
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--noise", type=float, default=0.4, help="noise rate (fraction of labels changed)")
    p.add_argument("--noise-type", default="symmetric", choices=("symmetric", "pair"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train-size", type=int, default=None, help="use only this many training images")
    p.add_argument("--valid-size", type=int, default=None, help="validation images (default 10,000)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--set", nargs="*", type=key_value, default=[], metavar="KEY=VALUE",
                   help="extra spec entries (YAML values, dotted keys)")
    p.add_argument("--out", default="results/bench-images")
    p.add_argument("--timing", action="store_true", help="one epoch per method on --train-size images")
    return p


#: method settings the base spec scales with --epochs (kept only for the methods that have them)
EPOCH_SCALED = ("T1", "round_epochs")


def _base_spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "task": "image", "dataset": args.dataset, "backbone": args.backbone, "noise_rate": args.noise,
        "noise_type": args.noise_type, "max_epochs": args.epochs, "data_root": args.data_root,
        "device": args.device, "train_size": args.train_size, "valid_size": args.valid_size,
        # epoch-scaled method defaults: DeCA(p) switches to Eq. 24 halfway, ITLM has 4 rounds
        "T1": max(1, args.epochs // 2), "round_epochs": max(1, args.epochs // 4),
    }
    spec = nested(args.set, spec)
    return spec


def run_one(spec: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train one (method, seed); returns its summary row and its per-epoch rows."""
    from deca_tune.tasks import get_task

    known = get_task("image").known_keys(spec["method"])
    spec = {k: v for k, v in spec.items() if k in known or k not in EPOCH_SCALED}
    trainer = ImageTrainer(spec)
    curves = []
    while not trainer.finished:
        m = trainer.train_epoch()
        curves.append({"method": spec["method"], "seed": spec["seed"], **m})
    last, best = curves[-1], trainer.best
    row = {
        "method": spec["method"], "seed": spec["seed"], "epochs": trainer.epoch,
        "final_test_acc": last["test_clean/accuracy"], "best_test_acc": best["test_clean/accuracy"],
        "best_epoch": best["epoch"], "best_valid_acc": best["valid/accuracy"],
        "sec_per_epoch": sum(c["epoch_seconds"] for c in curves) / len(curves),
        "pretrain_seconds": last["pretrain_seconds"],
        "train_size": len(trainer.split.train_y_noisy),
        "realised_noise": trainer.split.realised_noise_rate,
    }
    return row, curves


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    g = runs.groupby("method", sort=False)
    out = pd.DataFrame({
        "n_seeds": g.size(),
        "final_mean": g["final_test_acc"].mean() * 100, "final_std": g["final_test_acc"].std(ddof=0) * 100,
        "best_mean": g["best_test_acc"].mean() * 100, "best_std": g["best_test_acc"].std(ddof=0) * 100,
        "sec_per_epoch": g["sec_per_epoch"].mean(), "pretrain_seconds": g["pretrain_seconds"].mean(),
    })
    return out.reset_index()


def to_markdown(summary: pd.DataFrame, header: str) -> str:
    lines = [header, "",
             "| method | seeds | final-epoch clean test acc (%) | best-epoch (noisy valid) clean test acc (%) "
             "| s / epoch | pre-training f' (s) | paper, ResNet-32 FMNIST 40% |",
             "|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        paper = PAPER_FMNIST_40.get(r["method"])
        lines.append(f"| {r['method']} | {int(r['n_seeds'])} | {r['final_mean']:.2f} ± {r['final_std']:.2f} "
                     f"| {r['best_mean']:.2f} ± {r['best_std']:.2f} | {r['sec_per_epoch']:.1f} "
                     f"| {r['pretrain_seconds']:.0f} | {paper if paper is not None else '-'} |")
    return "\n".join(lines) + "\n"


def run_timing(args: argparse.Namespace, out: Path) -> None:
    base = _base_spec(args)
    rows = []
    for method in args.methods:
        spec = {**base, "method": method, "seed": args.seeds[0], "max_epochs": 1, "T1": 1,
                "round_epochs": 1, "pretrain_overrides": {"max_epochs": 1}}
        trainer = ImageTrainer(spec)
        m = trainer.train_epoch()
        n = m["train_rows"]
        rows.append({"method": method, "backbone": args.backbone, "train_images": n,
                     "train_seconds": m["train_seconds"], "sec_per_1k_train_images": 1000 * m["train_seconds"] / n,
                     "eval_seconds": m["epoch_seconds"] - m["train_seconds"],
                     "est_full_epoch_train_seconds_49k": 49 * 1000 * m["train_seconds"] / n})
        print(json.dumps(rows[-1]), flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(out / f"timing_{args.backbone}.csv", index=False)
    print(df.to_string(index=False))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.timing:
        run_timing(args, out)
        return 0
    base = _base_spec(args)
    runs, curves = [], []
    start = time.perf_counter()
    for seed in args.seeds:
        for method in args.methods:
            row, c = run_one({**base, "method": method, "seed": seed})
            runs.append(row)
            curves.extend(c)
            print(json.dumps(row), flush=True)
            pd.DataFrame(runs).to_csv(out / "runs.csv", index=False)
            pd.DataFrame(curves).to_csv(out / "curves.csv", index=False)
    summary = summarise(pd.DataFrame(runs))
    summary.to_csv(out / "summary.csv", index=False)
    header = (f"{args.dataset}, {args.noise:.0%} {args.noise_type} noise, {args.backbone}, {args.epochs} epochs, "
              f"seeds {' '.join(map(str, args.seeds))}, train images {runs[0]['train_size']}, "
              f"total {time.perf_counter() - start:.0f} s, torch threads {torch.get_num_threads()}")
    md = to_markdown(summary, header)
    (out / "summary.md").write_text(md)
    (out / "spec.json").write_text(json.dumps(base, indent=2, default=str))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
