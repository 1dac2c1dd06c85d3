"""The ``search`` phase of ``bench scale``: a whole search on a ratings file, split by where its
wall time and memory went (issue 21's end-to-end check).

Runs ``python -m deca_tune.search`` as a user would on the ``csv`` data set of the size's file
(GMF, ``--methods`` default ``normal,deca``, ``--search-trials`` trials of ``--search-epochs``
epochs per method, seed 0, one CPU per trial, so as many trials at a time as the machine has
CPUs), then reads the experiment folder (files only):

- the driver (``manifest.json``, the run's entry): ``load_seconds`` (parsing and splitting the
  file, before Ray starts), ``share_seconds`` (one ``ray.put`` of the data sets for every trial),
  ``driver_peak_rss_mb``, the run's wall time;
- every trial (its Tune ``result.json``): ``handover_seconds`` (fetching the driver's data sets
  from the object store), ``setup_seconds`` (building the split and the trainer from them),
  training (``train_seconds``, summed over epochs), evaluation (``epoch_seconds -
  train_seconds``), the rest of Tune's ``time_total_s`` (reporting and checkpointing), and
  ``peak_rss_mb``;
- Tune's own overhead: the wall time left once the driver's load and the trials' seconds (divided
  by the slots) are taken out: Ray's start, scheduling, idle slots in a unit's tail.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

SEARCH_PARTS = ("handover", "setup", "train", "eval", "report")


def search_command(csv_path: Path, options: dict[str, Any], storage: Path, name: str, *,
                   methods: str, trials: int, epochs: int, sets: Sequence[str] = ()) -> list[str]:
    """The user's command line of the search (one seed, one CPU per trial; ``sets``: its
    ``--set KEY=VALUE`` spec overrides, e.g. ``valid_users=20000``)."""
    opts = [f"{k}={v}" for k, v in options.items()]
    return [sys.executable, "-m", "deca_tune.search", "--datasets", "csv",
            "--option", f"path={csv_path}", *[x for o in opts for x in ("--option", o)],
            "--backbones", "gmf", "--methods", methods, "--num-samples", str(trials),
            "--max-epochs", str(epochs), "--seeds", "0", "--cpus-per-trial", "1",
            "--storage-path", str(storage), "--name", name, "--verbose", "1",
            *[x for kv in sets for x in ("--set", kv)]]


def trial_rows(experiment: Path) -> list[dict[str, Any]]:
    """One row per trial (search and seed runs) of the experiment: its seconds per part and its
    worker's peak memory, read from each trial's ``result.json``."""
    rows = []
    for phase in ("search", "seeds"):
        for trial_dir in sorted((experiment / phase).glob("*/*")):
            path = trial_dir / "result.json"
            if not trial_dir.is_dir() or not path.exists():
                continue
            results = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
            epochs = [r for r in results if "train_seconds" in r]
            if not epochs:
                continue
            last = results[-1]
            train = sum(float(r["train_seconds"]) for r in epochs)
            evaluation = sum(float(r["epoch_seconds"]) - float(r["train_seconds"]) for r in epochs)
            total = float(last.get("time_total_s", 0.0))
            setup = float(last.get("setup_seconds", 0.0))
            handover = float(last.get("handover_seconds", 0.0))
            rows.append({
                "phase": phase, "unit": trial_dir.parent.name, "trial": trial_dir.name,
                "epochs": len(epochs), "handover": handover, "setup": setup, "train": train,
                "eval": evaluation,
                # time_total_s runs from the function's start: the parts above, then reporting
                "report": max(0.0, total - handover - setup - train - evaluation),
                "total": total, "peak_rss_mb": float(last.get("peak_rss_mb", 0.0)),
            })
    return rows


def breakdown(experiment: Path) -> dict[str, Any]:
    """Where the search's wall time and memory went (the module docstring)."""
    manifest = json.loads((experiment / "manifest.json").read_text())
    run = manifest["runs"][-1]
    slots = int(manifest.get("resources", {}).get("concurrency", 1))
    rows = trial_rows(experiment)
    wall = float(run.get("wall_seconds") or 0.0)
    load = float(run.get("load_seconds") or 0.0)
    share = float(run.get("share_seconds") or 0.0)
    sums = {part: sum(r[part] for r in rows) for part in (*SEARCH_PARTS, "total")}
    # the driver's wall time starts after loading (run entry); the load is added to the total
    overhead = wall - share - sums["total"] / max(slots, 1)
    return {
        "slots": slots, "trials": len(rows), "epochs": sum(r["epochs"] for r in rows),
        "wall_s": round(load + wall, 1), "load_s": round(load, 2), "share_s": round(share, 2),
        **{f"{part}_slot_s": round(sums[part], 1) for part in (*SEARCH_PARTS, "total")},
        "tune_overhead_s": round(overhead, 1),
        "driver_peak_rss_mb": run.get("driver_peak_rss_mb"),
        "trial_peak_rss_mb": max((r["peak_rss_mb"] for r in rows), default=None),
        "per_trial": rows,
    }


def run_search_phase(csv_path: Path, options: dict[str, Any], workdir: Path, label: str, *,
                     methods: str, trials: int, epochs: int, timeout: float,
                     sets: Sequence[str] = ()) -> dict[str, Any]:
    """Run the search on ``csv_path`` in a subprocess and return :func:`breakdown` (or
    ``search_error``)."""
    storage = workdir / "search"
    name = f"scale-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = search_command(csv_path, options, storage, name, methods=methods, trials=trials,
                         epochs=epochs, sets=sets)
    env = {**os.environ, "DECA_TUNE_CACHE": str(csv_path.parent / "cache")}
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        return {"search_error": " | ".join(tail) or f"exit status {out.returncode}"}
    result = breakdown(storage / name)
    result.update({"command_s": round(seconds, 1), "experiment": str(storage / name),
                   "sets": " ".join(sets)})
    return {f"search_{k}": v for k, v in result.items()}


def format_search_table(rows: list[dict[str, Any]]) -> str:
    """The breakdown per size, in seconds (trial parts summed over trials, in slot-seconds)."""
    head = ("| rows | trials (epochs) on slots | wall s (command s) | load s | share s | handover | "
            "setup | training | evaluation | report | Tune overhead s | driver / trial peak MB |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if "search_trials" not in r:
            if r.get("search_error"):
                lines.append(f"| {r['size']} | error: {r['search_error']} |")
            continue
        g = lambda k: r.get(f"search_{k}")  # noqa: E731
        lines.append(
            f"| {r['size']} | {g('trials')} ({g('epochs')}) on {g('slots')} | {g('wall_s')} "
            f"({g('command_s')}) | {g('load_s')} | {g('share_s')} | {g('handover_slot_s')} | "
            f"{g('setup_slot_s')} | {g('train_slot_s')} | {g('eval_slot_s')} | {g('report_slot_s')} | "
            f"{g('tune_overhead_s')} | {g('driver_peak_rss_mb')} / {g('trial_peak_rss_mb')} |")
    return "\n".join(lines)
