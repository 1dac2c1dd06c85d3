"""Scale of the bring-your-own-data path: ``python -m deca_tune.bench.scale [--sizes 0.1M,1M,10M]``.

For each size the ``synthetic`` generator writes a ratings file of that many rows
(:func:`deca_tune.data.synthetic.write_synthetic_csv`: 40 rows per user, 80 per item, text ids
``u12``/``i7`` unless ``--ids int``), and the ``csv`` data set reads it. Measured, each phase in
a fresh subprocess so that its peak resident memory (``ru_maxrss``) is its own:

- ``write``: generating and writing the file;
- ``load_cold``: parsing and splitting it into an empty split cache (and writing the entry);
- ``load_cached``: the same load again, from the cache;
- ``train:<recipe>``, for each of ``--recipes`` (default ``published,linear``, the spec key
  ``recipe``, docs/training-recipes.md): one GMF ``normal`` epoch and one GMF ``deca`` epoch,
  training only (:func:`timed_epoch`: sampling, then the optimiser steps; ``--max-steps`` /
  ``--max-steps-published`` time only that many steps and extrapolate, a step's cost being the
  same all epoch), and, in the phase of ``--rank-with`` (default: the last recipe), one full
  ranking of every test user over every item (``rank_metrics``, users batched so that a batch's
  score matrix stays within ``--rank-mb``; ``--rank-max-users`` ranks the first N and
  extrapolates) beside the matrix-multiply floor of it: ``users x items x dim x 2`` FLOP at the
  rate of a probe :func:`gemm_probe` of the same shape, measured right after;
- ``search`` (only when named in ``--phases``): a whole ``python -m deca_tune.search`` on the
  file, its wall time and memory split by part (:mod:`deca_tune.bench.scale_search`).

Prints two tables (loading; training and ranking per recipe, with each epoch's growth over the
previous size) and writes JSON (``--out``) with the machine's CPU count and load average.
``--tiny`` (or ``--sizes tiny``: 2,000 rows) is for tests. Sizes: ``tiny``, ``0.1M``, ``1M``,
``10M`` or any count such as ``250k``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deca_tune.bench.scale_search import format_search_table, run_search_phase
from deca_tune.memory import peak_rss_mb

SIZES = {"tiny": 2_000, "0.1M": 100_000, "1M": 1_000_000, "10M": 10_000_000}
DEFAULT_SIZES = "0.1M,1M,10M"
PHASES = ("write", "load_cold", "load_cached", "train")
#: phases run only when asked for (``--phases ...,search``)
EXTRA_PHASES = ("search",)
CSV_OPTIONS = {"user_col": "user", "item_col": "item", "rating_col": "rating",
               "time_col": "timestamp", "clean": "rating>=4", "split": "random", "seed": 0}


def parse_size(text: str) -> tuple[str, int]:
    """``"1M"`` -> ``("1M", 1_000_000)``; ``"250k"``, ``"2.5M"``, ``"30000"`` and the names of
    :data:`SIZES` are understood."""
    text = text.strip()
    if text in SIZES:
        return text, SIZES[text]
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        rows = int(round(float(text[:-1] if scale > 1 else text) * scale))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: use {', '.join(SIZES)} or a count "
                                         f"such as 250k") from None
    if rows < 100:
        raise argparse.ArgumentTypeError(f"size {text!r}: at least 100 rows")
    return text, rows


def build_gmf_trainer(csv_path: str, split: Any, *, method: str, recipe: str, device: str,
                      eval_batch_users: int) -> Any:
    """The one call of the trainer API: a GMF ``method`` trainer on the file's ``split``."""
    from deca_tune.training import build_trainer

    return build_trainer({
        "task": "rec", "dataset": "csv", "dataset_options": {"path": csv_path, **CSV_OPTIONS},
        "backbone": "gmf", "method": method, "max_epochs": 1, "seed": 0, "device": device,
        "eval_batch_users": eval_batch_users, "recipe": recipe, "eval_splits": "selection",
        "pretrain_cache": "off",
    }, split=split)


def timed_epoch(trainer: Any, max_steps: int = 0) -> dict:
    """One training epoch without evaluation, as :meth:`EpochTrainer.train_epoch` runs it:
    ``sample_s`` (shuffling and the epoch's negatives, until the first batch), ``steps_s`` (the
    optimiser steps), ``epoch_s`` (their sum). With ``max_steps`` > 0 only that many steps run
    and ``steps_s`` is extrapolated to the epoch's steps (``steps_timed`` of ``steps_total``):
    a step's cost does not change within an epoch."""
    import math

    trainer.prepare()
    trainer.method.train()
    trainer.method.on_epoch_start(trainer.epoch)
    total = math.ceil(len(trainer.split.train) / int(trainer.spec["batch_size"]))
    totals: dict = {}
    batches = trainer.batches()
    start = time.perf_counter()
    batch = next(batches)
    sampled = time.perf_counter()
    steps = 0
    while batch is not None:
        loss, parts = trainer.batch_loss(batch)
        trainer._optimizer_step(loss, parts, totals)
        steps += 1
        if max_steps and steps >= max_steps:
            break
        batch = next(batches, None)
    end = time.perf_counter()
    if steps == total:
        trainer.after_epoch()
    steps_s = (end - sampled) * total / steps
    return {"sample_s": round(sampled - start, 3), "steps_s": round(steps_s, 3),
            "epoch_s": round(sampled - start + steps_s, 3), "steps_timed": steps, "steps_total": total}


def rank_and_probe(trainer: Any, split: Any, batch: int, device: str, max_users: int = 0) -> dict:
    """One full ranking of every test user over every item (batches of ``batch`` users), and
    the matrix-multiply floor of it: ``users x items x dim x 2`` FLOP at :func:`gemm_probe`'s
    rate, measured at the same batch shape right after. ``max_users`` > 0: only the first that
    many test users are ranked (``rank_s``, ``gemm_floor_s`` and their ratio are theirs) and
    ``rank_all_s`` extrapolates to every test user (the cost is linear in users)."""
    import numpy as np
    import torch

    from deca_tune.metrics.ranking import rank_metrics

    test = split.test
    all_users = np.unique(test[:, 0])
    if max_users and len(all_users) > max_users:
        test = test[np.isin(test[:, 0], all_users[:max_users])]
    trainer.method.eval()
    start = time.perf_counter()
    with torch.no_grad():
        res = rank_metrics(trainer.method.score_all, test, trainer.test_mask, split.n_users,
                           split.n_items, (20,), batch_users=batch, device=trainer.device,
                           owned_scores=True)
    rank_s = time.perf_counter() - start
    dim = trainer.method.f.user.weight.shape[1]
    rate = gemm_probe(batch, dim, split.n_items, device)
    floor = 2.0 * int(res["users"]) * split.n_items * dim / rate
    return {"rank_s": round(rank_s, 3), "rank_users": int(res["users"]),
            "rank_users_all": len(all_users),
            "rank_all_s": round(rank_s * len(all_users) / max(int(res["users"]), 1), 3),
            "test_ndcg@20": round(float(res["ndcg@20"]), 4), "gemm_gflops": round(rate / 1e9, 2),
            "gemm_floor_s": float(f"{floor:.4g}"), "rank_over_floor": round(rank_s / floor, 2)}


def gemm_probe(batch: int, dim: int, n_items: int, device: str, seconds: float = 1.0) -> float:
    """FLOP/s of ``[batch, dim] @ [dim, n_items]`` into a reused output (the ranking's matrix
    product at its batch size), timed over at least ``seconds``."""
    import torch

    a = torch.randn(batch, dim, device=device)
    b = torch.randn(dim, n_items, device=device)
    out = torch.empty(batch, n_items, device=device)
    torch.mm(a, b, out=out)
    reps, start = 0, time.perf_counter()
    while True:
        torch.mm(a, b, out=out)
        reps += 1
        if device != "cpu":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2.0 * batch * dim * n_items * reps / elapsed


def rank_batch_users(n_items: int, rank_mb: float, device: str = "cpu") -> int:
    """Users per ranking batch so a batch's matrices (scores, masks: ~16 bytes per item) fit
    ``rank_mb``, and at most what the evaluator itself scores at once on the device
    (:func:`deca_tune.metrics.ranking.score_batch_users`: on a CPU a score matrix under 30 MiB)."""
    import torch

    from deca_tune.metrics.ranking import score_batch_users

    wanted = int(max(1, min(8192, rank_mb * 2**20 // max(1, 16 * n_items))))
    return score_batch_users(wanted, n_items, torch.device(device))


def run_phase(phase: str, csv_path: Path, *, rows: int, text_ids: bool, device: str,
              rank_mb: float, threads: int, max_steps: int = 0, rank: bool = True,
              rank_max_users: int = 0) -> dict:
    """One phase in this process (see the module docstring); returns its measurements.
    ``*_base_rss_mb`` is the peak memory after the phase's imports, before its work."""
    import pandas  # noqa: F401  (imported before ``base``: not part of the phase's memory)

    from deca_tune.data import REC_DATASETS

    REC_DATASETS.get("csv")
    if phase.startswith("train"):
        import torch

        from deca_tune.training import build_trainer  # noqa: F401
    base = peak_rss_mb()
    if phase == "write":
        from deca_tune.data.synthetic import write_synthetic_csv

        start = time.perf_counter()
        info = write_synthetic_csv(csv_path, rows, text_ids=text_ids)
        return {"write_s": round(time.perf_counter() - start, 3), "rows": info["rows"],
                "users": info["users"], "items": info["items"],
                "file_mb": round(info["bytes"] / 2**20, 1), "write_rss_mb": peak_rss_mb(),
                "write_base_rss_mb": base}
    if phase in ("load_cold", "load_cached"):
        loader = REC_DATASETS.get("csv")
        start = time.perf_counter()
        split = loader(csv_path.parent, False, path=str(csv_path), **CSV_OPTIONS)
        seconds = time.perf_counter() - start
        stats = split.stats()
        return {f"{phase}_s": round(seconds, 3), f"{phase}_rss_mb": peak_rss_mb(),
                f"{phase}_base_rss_mb": base,
                **({"split_users": stats["users"], "split_items": stats["items"],
                    "train": stats["train"], "test": stats["test"],
                    "dropped_duplicates": stats.get("dropped_duplicates")}
                   if phase == "load_cold" else {})}
    if phase.startswith("train"):
        recipe = phase.split(":")[1] if ":" in phase else "published"
        if threads > 0:
            torch.set_num_threads(threads)
        split = REC_DATASETS.get("csv")(csv_path.parent, False, path=str(csv_path), **CSV_OPTIONS)
        batch = rank_batch_users(split.n_items, rank_mb, device)
        out: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "rank_batch_users": batch}
        gmf = None
        for method in ("normal", "deca"):
            trainer = build_gmf_trainer(str(csv_path), split, method=method, recipe=recipe,
                                        device=device, eval_batch_users=batch)
            timing = timed_epoch(trainer, max_steps)
            tag = "gmf" if method == "normal" else "deca"
            out.update({f"{tag}_{k}": v for k, v in timing.items()})
            out["recipe"] = trainer.training_recipe
            if method == "normal":
                gmf = trainer
            else:
                del trainer
        if rank:
            out.update(rank_and_probe(gmf, split, batch, device, rank_max_users))
        out.update({"train_rss_mb": peak_rss_mb(), "train_base_rss_mb": base})
        return out
    raise ValueError(f"unknown phase {phase!r}; choose one of: {', '.join(PHASES)}")


def _phase_in_subprocess(phase: str, csv_path: Path, cache: Path, args: argparse.Namespace,
                         rows: int) -> dict:
    cmd = [sys.executable, "-m", "deca_tune.bench.scale", "--phase", phase, "--csv", str(csv_path),
           "--rows", str(rows), "--ids", args.ids, "--device", args.device,
           "--rank-mb", str(args.rank_mb), "--threads", str(args.threads),
           "--max-steps", str(max_steps_of(args, phase)), "--rank", str(int(ranks(args, phase))),
           "--rank-max-users", str(args.rank_max_users)]
    env = {**os.environ, "DECA_TUNE_CACHE": str(cache)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        return {f"{phase}_error": " | ".join(tail) or f"exit status {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def ranks(args: argparse.Namespace, phase: str) -> bool:
    """Whether the ``train:<recipe>`` phase also ranks (``--rank-with``; the ranking's cost does
    not depend on the recipe that trained the weights)."""
    return phase == f"train:{args.rank_with or args.recipes[-1]}"


def max_steps_of(args: argparse.Namespace, phase: str) -> int:
    """The step cap of a ``train:<recipe>`` phase (``--max-steps``, ``--max-steps-published``)."""
    if phase == "train:published" and args.max_steps_published:
        return int(args.max_steps_published)
    return int(args.max_steps)


def measure_size(label: str, rows: int, workdir: Path, args: argparse.Namespace) -> dict:
    """Every phase of one size; a failing phase is recorded (``<phase>_error``), not raised."""
    folder = workdir / label
    csv_path, cache = folder / "ratings.csv", folder / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    row: dict[str, Any] = {"size": label, "rows_requested": rows}
    for name in (*PHASES, *EXTRA_PHASES):
        if name not in args.phases and not (name == "write" and not csv_path.exists()):
            continue
        if name == "write" and csv_path.exists() and args.reuse_files:
            continue
        if name == "search":
            row.update(run_search_phase(csv_path, CSV_OPTIONS, folder, label, methods=args.search_methods,
                                        trials=args.search_trials, epochs=args.search_epochs,
                                        timeout=args.timeout, sets=args.search_set))
            continue
        for phase in ([f"train:{r}" for r in args.recipes] if name == "train" else [name]):
            result = _measure_phase(phase, csv_path, cache, rows, args)
            if phase.startswith("train:"):
                result = {f"{phase[6:]}_{k}": v for k, v in result.items()}
            row.update(result)
            if any(k.endswith("_error") for k in result):
                return row
    return row


def _measure_phase(phase: str, csv_path: Path, cache: Path, rows: int, args: argparse.Namespace) -> dict:
    """One phase, in a subprocess (its own peak memory) or with ``--in-process`` here."""
    if not args.in_process:
        return _phase_in_subprocess(phase, csv_path, cache, args, rows)
    old = os.environ.get("DECA_TUNE_CACHE")
    os.environ["DECA_TUNE_CACHE"] = str(cache)
    try:
        from deca_tune.data import clear_cache

        clear_cache()
        return run_phase(phase, csv_path, rows=rows, text_ids=args.ids == "text",
                         device=args.device, rank_mb=args.rank_mb, threads=args.threads,
                         max_steps=max_steps_of(args, phase), rank=ranks(args, phase),
                         rank_max_users=args.rank_max_users)
    except Exception as exc:  # noqa: BLE001 - recorded in the table
        return {f"{phase}_error": f"{type(exc).__name__}: {exc}"}
    finally:
        if old is None:
            os.environ.pop("DECA_TUNE_CACHE", None)
        else:
            os.environ["DECA_TUNE_CACHE"] = old


COLUMNS = ["size", "rows", "users", "items", "file_mb", "write_s", "load_cold_s", "load_cached_s",
           "load_cold_rss_mb", "load_cold_extra_mb"]
#: the training table: one line per size and recipe
TRAIN_COLUMNS = ["size", "recipe", "gmf_epoch_s", "gmf_growth", "deca_epoch_s", "deca_growth",
                 "deca_over_gmf", "steps_timed", "rank_s", "rank_users", "rank_users_all",
                 "rank_all_s", "rank_batch_users",
                 "gemm_gflops", "gemm_floor_s", "rank_over_floor", "train_rss_mb", "train_extra_mb"]


def format_training_table(rows: list[dict], recipes: list[str]) -> str:
    """Training and ranking per size and recipe; ``*_growth``: the epoch's factor over the
    previous size's (targets: at most 12x per 10x rows); ``steps_timed``: steps timed of the
    epoch's (the rest extrapolated when fewer)."""
    import pandas as pd

    lines = []
    for recipe in recipes:
        previous: dict | None = None
        for row in rows:
            r = {k[len(recipe) + 1:]: v for k, v in row.items() if k.startswith(recipe + "_")}
            if "gmf_epoch_s" not in r:
                continue
            line = {"size": row["size"], "recipe": r.get("recipe", recipe), **r,
                    "deca_over_gmf": round(r["deca_epoch_s"] / r["gmf_epoch_s"], 2),
                    "steps_timed": f"{r['gmf_steps_timed']}/{r['gmf_steps_total']}",
                    "train_extra_mb": round(r["train_rss_mb"] - r["train_base_rss_mb"], 1)}
            for tag in ("gmf", "deca"):
                if previous is not None:
                    line[f"{tag}_growth"] = round(r[f"{tag}_epoch_s"] / previous[f"{tag}_epoch_s"], 1)
            lines.append(line)
            previous = r
    if not lines:
        return ""
    table = pd.DataFrame(lines)
    table = table[[c for c in TRAIN_COLUMNS if c in table]]
    try:
        return table.to_markdown(index=False)
    except ImportError:
        return table.to_string(index=False)


def format_table(rows: list[dict]) -> str:
    """The results as a Markdown table (``*_extra_mb``: peak memory above the phase's imports)."""
    import pandas as pd

    table = pd.DataFrame(rows)
    for phase in ("load_cold",):
        if f"{phase}_rss_mb" in table and f"{phase}_base_rss_mb" in table:
            table[f"{phase}_extra_mb"] = (table[f"{phase}_rss_mb"]
                                          - table[f"{phase}_base_rss_mb"]).round(1)
    cols = [c for c in COLUMNS if c in table] + [c for c in table if c.endswith("_error")]
    table = table[cols]
    try:
        return table.to_markdown(index=False)
    except ImportError:
        return table.to_string(index=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deca_tune.bench.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=DEFAULT_SIZES,
                   help=f"comma-separated sizes (default {DEFAULT_SIZES}; also: tiny, 250k, ...)")
    p.add_argument("--tiny", action="store_true", help="only the tiny size (2,000 rows; tests)")
    p.add_argument("--ids", choices=["text", "int"], default="text",
                   help="ids in the file: text (u12, i7: the slow case of old) or integers")
    p.add_argument("--device", default="cpu", help="torch device of the epoch and the ranking")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--rank-mb", type=float, default=256.0,
                   help="memory budget of one full-ranking batch (MiB; default 256)")
    p.add_argument("--workdir", default=None,
                   help="folder for the files and caches (default: a temporary folder, removed)")
    p.add_argument("--keep-files", action="store_true", help="keep the temporary folder")
    p.add_argument("--reuse-files", action="store_true",
                   help="reuse ratings files already in --workdir (no write phase)")
    p.add_argument("--phases", default=",".join(PHASES),
                   help=f"phases to run (default {','.join(PHASES)}; the file is written when "
                        f"missing; e.g. write,load_cold,load_cached to skip training)")
    p.add_argument("--out", default="bench_scale.json", help="JSON results (default bench_scale.json)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per phase")
    p.add_argument("--in-process", action="store_true",
                   help="run the phases in this process (faster; peak memory is then cumulative)")
    p.add_argument("--recipes", default="published,linear",
                   help="training recipes of the train phase (spec key recipe; default both)")
    p.add_argument("--max-steps", type=int, default=0,
                   help="time at most this many optimiser steps per epoch and extrapolate (0: all)")
    p.add_argument("--max-steps-published", type=int, default=0,
                   help="the same for the published recipe only (its 10M epoch takes minutes)")
    p.add_argument("--rank-with", default=None,
                   help="the recipe whose train phase also ranks (default: the last of --recipes)")
    p.add_argument("--rank-max-users", type=int, default=0,
                   help="rank only the first N test users and extrapolate (0: all)")
    p.add_argument("--search-methods", default="normal,deca",
                   help="the search phase's methods (GMF; default normal,deca)")
    p.add_argument("--search-trials", type=int, default=4, help="the search phase's trials per method")
    p.add_argument("--search-epochs", type=int, default=2, help="the search phase's epochs per trial")
    p.add_argument("--search-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a spec override of the search phase (its --set; repeatable), e.g. "
                        "valid_users=20000")
    # internal: one phase in this process, print its JSON
    p.add_argument("--rank", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--csv", help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.phase:
        result = run_phase(args.phase, Path(args.csv), rows=args.rows, text_ids=args.ids == "text",
                           device=args.device, rank_mb=args.rank_mb, threads=args.threads,
                           max_steps=args.max_steps, rank=bool(args.rank),
                           rank_max_users=args.rank_max_users)
        print(json.dumps(result))
        return 0

    args.phases = [ph.strip() for ph in args.phases.split(",") if ph.strip()]
    args.recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    bad = sorted(set(args.recipes) - {"published", "linear"})
    if bad:
        p.error(f"unknown recipe(s) {', '.join(bad)}; choose from: published, linear")
    unknown = sorted(set(args.phases) - set(PHASES) - set(EXTRA_PHASES))
    if unknown:
        p.error(f"unknown phase(s) {', '.join(unknown)}; choose from: "
                f"{', '.join(PHASES + EXTRA_PHASES)}")
    try:
        sizes = [parse_size(s) for s in (["tiny"] if args.tiny else args.sizes.split(",")) if s.strip()]
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    temp = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="deca_scale_")) if temp else Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(),
               "platform": platform.platform(), "loadavg_start": list(os.getloadavg())}
    rows = []
    try:
        for label, n in sizes:
            row = measure_size(label, n, workdir, args)
            row["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
            rows.append(row)
            print(f"{label}: {json.dumps(row)}", file=sys.stderr, flush=True)
    finally:
        if temp and not args.keep_files:
            shutil.rmtree(workdir, ignore_errors=True)
    machine["loadavg_end"] = list(os.getloadavg())
    print(f"csv data set at scale ({args.ids} ids; seconds, peak RSS in MiB; load average "
          f"{machine['loadavg_start'][0]:.2f} -> {machine['loadavg_end'][0]:.2f} on "
          f"{machine['cpus']} CPUs)")
    print(format_table(rows))
    print(format_training_table(rows, args.recipes))
    if "search" in args.phases:
        print("\nsearch (seconds; trial parts summed over trials, in slot-seconds):")
        print(format_search_table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "ids": args.ids, "device": args.device,
                               "sizes": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 1 if any(k.endswith("_error") for r in rows for k in r) else 0


if __name__ == "__main__":
    sys.exit(main())
