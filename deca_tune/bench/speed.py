"""Speed of the recommendation core, optionally side by side with the DeCA authors' code.

``python -m deca_tune.bench speed [--authors PATH] [--quick] [--threads 1]``

Rows: GMF, NeuMF, CDAE and LightGCN trained with ``normal``, and GMF with ``deca`` (DeCA's cost
over normal). For each row, in a fresh subprocess (so peak memory is the row's own): seconds per
training epoch (median over ``--epochs`` after one warm-up epoch; the trainer's
``train_seconds``: sampling, mini-batches and optimiser steps, no evaluation), one full-ranking
evaluation of the clean-test users (all items, top-20, the protocol's mask), the evaluation of
all four splits after an epoch (``eval_splits: all``, one scoring pass), the evaluation of the
selection split alone (``eval_splits: selection``, what a search trial pays per epoch), and the
process's peak resident memory.

With ``--authors PATH`` (a checkout of github.com/wangyu-ustc/DeCA; copied and patched by
:mod:`deca_tune.bench.authors`, never modified, never vendored) every row also runs their
``main.py --default`` for the same backbone and method, capped at ``epochs + 1`` epochs
(``DECA_AUTHORS_EPOCHS``), one torch thread; their seconds per epoch come from the timestamped
epoch markers of the patched copy (the first epoch dropped as warm-up, as ours). Ours and theirs
alternate, row by row, ``--rounds`` times, so both sides see the same machine load; the table
gives the medians and the ratio ours / theirs, and the load average before and after. Both sides
use the authors' ML-100K split files (our ``ml-100k-paper``) when ``--authors`` is given.

``--quick``: one row (GMF normal), one timed epoch, one round: a smoke test of the harness.
Run the real benchmark alone on the machine: other jobs on the same cores distort every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: (backbone, method) rows of the benchmark
ROWS: list[tuple[str, str]] = [("gmf", "normal"), ("neumf", "normal"), ("cdae", "normal"),
                               ("lightgcn", "normal"), ("gmf", "deca")]
#: timed epochs per row are multiplied by this (CDAE's epoch is one step of 2048 user rows)
EPOCH_FACTOR = {"cdae": 5}


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(backbone: str, method: str, dataset: str, data_root: str | None, epochs: int,
            threads: int) -> dict[str, Any]:
    """Our side of one row, in this process (``--one``)."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)

    from deca_tune.metrics.ranking import rank_metrics
    from deca_tune.training.rec_trainer import RecTrainer

    spec = {"backbone": backbone, "method": method, "dataset": dataset, "data_root": data_root,
            "max_epochs": epochs + 1, "seed": 0, "device": "cpu", "eval_splits": "all"}
    trainer = RecTrainer(spec)
    trainer.train_epoch()  # warm-up: first-call allocations and lazy initialisation
    train_s, eval_all_s, eval_sel_s, rank_s = [], [], [], []
    split = trainer.split
    relevant, mask = trainer.eval_masks().get("test_clean", (split.test_clean, trainer.test_mask))
    selection = trainer.selection_metric.split("/")[0]
    for _ in range(epochs):
        train_s.append(trainer.train_epoch()["train_seconds"])
        for out, which in ((eval_all_s, "all"), (eval_sel_s, [selection])):
            start = time.perf_counter()
            trainer.evaluate(which)
            out.append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.no_grad():
            trainer.method.eval()
            rank_metrics(trainer.method.score_all, relevant, mask, split.n_users, split.n_items, trainer.ks,
                         batch_users=int(trainer.spec["eval_batch_users"]))
        rank_s.append(time.perf_counter() - start)
    med = statistics.median
    return {"backbone": backbone, "method": method, "epoch_s": med(train_s),
            "full_eval_s": med(rank_s), "eval_all_s": med(eval_all_s), "eval_selection_s": med(eval_sel_s),
            "eval_users": int(len(set(relevant[:, 0].tolist()))),
            "peak_mem_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "torch_threads": torch.get_num_threads()}


def _ours(backbone: str, method: str, args: argparse.Namespace, dataset: str, epochs: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "deca_tune.bench", "speed", "--one", f"{backbone}:{method}",
           "--dataset", dataset, "--epochs", str(epochs), "--threads", str(args.threads)]
    if args.data_root:
        cmd += ["--data-root", args.data_root]
    env = dict(os.environ)
    if args.threads > 0:
        env.update({k: str(args.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def authors_epoch_seconds(log_text: str) -> list[float]:
    """Durations of the reported model's epochs from the patched code's markers (``main``
    epochs; the last ends at ``DECA_AUTHORS_TRAIN_END``)."""
    import re

    marks = [float(t) for t in re.findall(r"^DECA_AUTHORS_EPOCH main \d+ (\S+)$", log_text, re.M)]
    end = re.search(r"^DECA_AUTHORS_TRAIN_END (\S+)$", log_text, re.M)
    times = marks + ([float(end.group(1))] if end else [])
    return [b - a for a, b in zip(times, times[1:])]


def _theirs(prepared: Path, backbone: str, method: str, args: argparse.Namespace, epochs: int,
            work: Path) -> dict[str, Any]:
    from deca_tune.bench import authors

    data_root = args.authors_data or str(Path(args.data_root or _default_data_root()) / "deca-splits")
    result = authors.run_cell(prepared, "ml-100k", backbone, method, 0, data_root, timeout=args.authors_timeout,
                              python=args.authors_python, threads=max(args.threads, 1),
                              max_epochs=epochs + 1, cell_dir=work / f"{backbone}__{method}")
    durations = authors_epoch_seconds(Path(result["log"]).read_text(errors="replace"))
    timed = durations[1:] or durations
    return {"epoch_s": statistics.median(timed) if timed else None, "epochs_timed": len(timed),
            "wall_s": result["wall_seconds"]}


def _default_data_root() -> str:
    from deca_tune.paths import data_root

    return str(data_root(None))


def _table(rows: list[dict[str, Any]], with_authors: bool) -> str:
    head = ["backbone", "method", "epoch s"]
    if with_authors:
        head += ["authors' epoch s", "ours / theirs"]
    head += ["full eval s (clean-test users)", "eval all 4 splits s", "eval selection split s", "peak RSS MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["backbone"], r["method"], f"{r['epoch_s']:.3f}"]
        if with_authors:
            theirs = r.get("authors_epoch_s")
            cells += [f"{theirs:.3f}" if theirs else "-",
                      f"{r['epoch_s'] / theirs:.2f}" if theirs else "-"]
        cells += [f"{r['full_eval_s']:.3f}", f"{r['eval_all_s']:.3f}", f"{r['eval_selection_s']:.3f}",
                  f"{r['peak_mem_mb']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = [tuple(r.split(":")) if ":" in r else (r, "normal") for r in args.rows] if args.rows else list(ROWS)
    if args.quick:
        rows, args.epochs, args.rounds = rows[:1], 1, 1
    dataset = args.dataset or ("ml-100k-paper" if args.authors else "ml-100k")
    prepared = work = None
    if args.authors:
        from deca_tune.bench import authors

        work = Path(tempfile.mkdtemp(prefix="deca-speed-"))
        prepared = authors.prepare_checkout(args.authors, work)
    samples: dict[tuple[str, str], dict[str, list]] = {r: {"ours": [], "theirs": []} for r in rows}
    load_before = _load()
    for _ in range(args.rounds):
        for backbone, method in rows:
            epochs = args.epochs * EPOCH_FACTOR.get(backbone, 1)
            samples[(backbone, method)]["ours"].append(_ours(backbone, method, args, dataset, epochs))
            if prepared is not None:
                samples[(backbone, method)]["theirs"].append(
                    _theirs(prepared, backbone, method, args, epochs, work / "cells"))
    load_after = _load()
    table = []
    for (backbone, method), got in samples.items():
        ours = got["ours"]
        row = {"backbone": backbone, "method": method}
        for key in ("epoch_s", "full_eval_s", "eval_all_s", "eval_selection_s", "peak_mem_mb"):
            row[key] = statistics.median(o[key] for o in ours)
        row["eval_users"] = ours[0]["eval_users"]
        theirs = [t["epoch_s"] for t in got["theirs"] if t.get("epoch_s")]
        if theirs:
            row["authors_epoch_s"] = statistics.median(theirs)
        table.append(row)
    return {"dataset": dataset, "threads": args.threads, "epochs": args.epochs, "rounds": args.rounds,
            "authors": args.authors, "load_before": load_before, "load_after": load_after,
            "rows": table, "samples": {f"{b}:{m}": v for (b, m), v in samples.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deca_tune.bench speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=None, help="default: ml-100k-paper with --authors, else ml-100k")
    p.add_argument("--data-root", default=None)
    p.add_argument("--rows", nargs="+", default=None, metavar="BACKBONE[:METHOD]",
                   help="rows to run (default: gmf neumf cdae lightgcn gmf:deca)")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per row after one warm-up epoch")
    p.add_argument("--rounds", type=int, default=2, help="alternations of ours and theirs per row")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--authors", default=None, metavar="PATH",
                   help="a checkout of the DeCA authors' repository: run their code beside ours")
    p.add_argument("--authors-python", default=os.environ.get("DECA_AUTHORS_PYTHON", sys.executable),
                   help="interpreter for their code (needs torch, numpy, pandas, scipy; "
                        "default $DECA_AUTHORS_PYTHON or this one)")
    p.add_argument("--authors-data", default=None,
                   help="folder with <dataset>/<dataset>.train.rating etc. (default DATA_ROOT/deca-splits)")
    p.add_argument("--authors-timeout", type=float, default=1800)
    p.add_argument("--quick", action="store_true", help="GMF only, one epoch, one round (a smoke test)")
    p.add_argument("--out", default=None, help="also write the result as JSON here")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one row, print JSON
    args = p.parse_args(argv)
    if args.one:
        backbone, _, method = args.one.partition(":")
        print(json.dumps(measure(backbone, method or "normal", args.dataset or "ml-100k", args.data_root,
                                 args.epochs, args.threads)))
        return 0
    report = run(args)
    print(f"dataset {report['dataset']}, {report['threads']} torch thread(s), medians of {report['rounds']} "
          f"round(s) x {report['epochs']} epoch(s); load average {report['load_before']} -> "
          f"{report['load_after']}")
    print(_table(report["rows"], bool(args.authors)))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
