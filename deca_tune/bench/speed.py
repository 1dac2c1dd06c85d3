"""Speed of the recommendation core on a data set (default ML-100K), one row per backbone:
seconds per training epoch (``normal``), seconds per full-ranking evaluation of every user, and
the process's peak resident memory. Each backbone runs in a fresh subprocess so peak memory is
its own. Targets on a 2-core CPU: GMF epoch <= 0.5 s, full evaluation <= 0.1 s.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

BACKBONES = ["mf", "gmf", "neumf", "cdae", "lightgcn"]


def measure(backbone: str, dataset: str, data_root: str | None, epochs: int, threads: int) -> dict:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)

    from deca_tune.training.rec_trainer import RecTrainer

    trainer = RecTrainer({"backbone": backbone, "dataset": dataset, "data_root": data_root,
                          "max_epochs": epochs + 1, "seed": 0})
    trainer.train_epoch()  # warm-up: first-call allocations and lazy initialisation
    train_s, eval_s = [], []
    for _ in range(epochs):
        m = trainer.train_epoch()
        train_s.append(m["train_seconds"])
        start = time.perf_counter()
        trainer.evaluate()
        eval_s.append(time.perf_counter() - start)
    # evaluate() covers 4 splits; one full-ranking pass is over the clean-test users
    users = trainer.split.test_clean[:, 0]
    start = time.perf_counter()
    from deca_tune.metrics.ranking import rank_metrics

    with torch.no_grad():
        trainer.method.eval()
        for _ in range(3):
            rank_metrics(trainer.method.score_all, trainer.split.test_clean, trainer.test_mask,
                         trainer.split.n_users, trainer.split.n_items, trainer.ks)
    one_eval = (time.perf_counter() - start) / 3
    return {
        "backbone": backbone,
        "epoch_s": round(statistics.median(train_s), 3),
        "full_eval_s": round(one_eval, 4),
        "eval_all_splits_s": round(statistics.median(eval_s), 4),
        "eval_users": int(len(set(users.tolist()))),
        "peak_mem_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deca_tune.bench speed", description=__doc__)
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--data-root", default=None)
    p.add_argument("--backbones", nargs="+", default=BACKBONES)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up epoch")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (0: torch's default; Ray trials get one per CPU they reserve)")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one backbone, print JSON
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.dataset, args.data_root, args.epochs, args.threads)))
        return 0
    rows = []
    for backbone in args.backbones:
        cmd = [sys.executable, "-m", "deca_tune.bench", "speed", "--one", backbone,
               "--dataset", args.dataset, "--epochs", str(args.epochs), "--threads", str(args.threads)]
        if args.data_root:
            cmd += ["--data-root", args.data_root]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    import pandas as pd

    table = pd.DataFrame(rows)
    print(f"dataset {args.dataset}: seconds per training epoch (normal), one full-ranking "
          f"evaluation (clean-test users, all items), peak RSS")
    print(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
