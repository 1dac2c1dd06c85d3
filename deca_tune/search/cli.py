"""``python -m deca_tune.search``: the driver. Parse (``config``), plan (``plan``), then for every
unit search and rerun its best configuration with seeds (``run``, Ray), summarise (``summary``)
and record (``manifest``).

For every (data set, backbone, method) unit of the experiment:

1. search its space (``search_spaces/*.yaml``) with Ray Tune: OptunaSearch (TPE, seeded) + ASHA
   on the epoch, or the paper grid; every method gets the same number of trials and epochs;
   trials are ranked by ``score``, the best epoch of the selection metric (noisy validation
   NDCG@20 / accuracy; clean validation with ``--protocol paper``), never by a test metric;
2. rerun the best configuration with every seed of ``--seeds``;
3. write ``summary/*.csv`` and print the mean ± std of the clean-test metrics.

The experiment folder layout is in ``docs/architecture.md``. Run with ``--help`` for options and
``--dry-run`` to see the plan. ``--resume`` continues an interrupted experiment: finished trials
and seed runs are kept, unfinished trials continue from their last checkpoint.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Sequence

from deca_tune.registry import UnknownNameError
from deca_tune.search.config import ResumeError, build_parser, command_line, parse_args, resume_config
from deca_tune.search.plan import Plan, build_plan, describe, grid_trial_count
from search_spaces.loader import SearchSpaceError

def run_experiment(plan: Plan, manifest: dict[str, Any] | None, callbacks: Sequence[Any] = ()) -> int:
    """Run every unit of ``plan``; returns the exit status."""
    from deca_tune.search import manifest as mf
    from deca_tune.search.run import connect, plan_resources, run_search, run_seeds, timed
    from deca_tune.search.summary import format_table, pick_best, search_rows, seed_rows, write_summary

    cfg = plan.cfg
    connect(cfg.address)
    res = plan_resources(cfg.cpus_per_trial, cfg.gpus_per_trial, cfg.max_concurrent)
    print(describe(plan, res.describe()), flush=True)
    manifest_path = plan.experiment_dir / "manifest.json"
    if manifest is None:
        manifest = mf.build_manifest(plan)
    else:
        manifest["resumes"].append({"at": mf.now(), "command": command_line(cfg.argv)})
    manifest["resources"] = {"cpus_per_trial": res.cpus, "gpus_per_trial": res.gpus,
                             "concurrency": res.concurrency, "cluster": res.cluster, "notes": res.notes}
    mf.write_manifest(manifest_path, manifest)

    started = time.perf_counter()
    search_all: list[dict] = []
    runs_all: list[dict] = []
    curves_all: list[dict] = []
    frames: dict = {}
    for i, unit in enumerate(plan.units, 1):
        print(f"\n=== [{i}/{len(plan.units)}] search {unit.key}: {unit.n_trials(cfg)} trials ===", flush=True)
        grid, seconds = timed(run_search, plan, unit, res, callbacks)
        rows = search_rows(unit, grid, plan.experiment_dir)
        best = pick_best(grid)
        timing = manifest["timing"].setdefault(unit.key, {})
        timing.update({"search_seconds": seconds, "search_trials": len(grid),
                       "search_trial_seconds": sum(float(r["seconds"] or 0) for r in rows),
                       "search_epochs": sum(int(r["epochs"]) for r in rows)})
        if best is not None:
            for row in rows:
                row["is_best"] = Path(row["path"]).name == Path(best.path).name
        search_all += rows
        if best is None:
            print(f"no trial of {unit.key} finished without error: no seed reruns", flush=True)
        else:
            chosen = {k: best.config[k] for k in unit.space.params}
            print(f"best of {unit.key}: score {best.metrics['score']:.4f} "
                  f"({best.metrics.get('selection_metric')}) with {chosen}", flush=True)
            print(f"\n=== [{i}/{len(plan.units)}] seeds {unit.key}: {' '.join(map(str, cfg.seeds))} ===",
                  flush=True)
            seed_grid, seconds = timed(run_seeds, plan, unit, best.config, res, callbacks)
            runs, curves = seed_rows(unit, seed_grid)
            timing.update({"seed_seconds": seconds,
                           "seed_trial_seconds": sum(float(r["seconds"] or 0) for r in runs)})
            runs_all += runs
            curves_all += curves
        frames = write_summary(plan.experiment_dir, search_all, runs_all, curves_all, cfg.seeds)
        mf.write_manifest(manifest_path, manifest)

    manifest["finished"] = mf.now()
    manifest["wall_seconds"] = time.perf_counter() - started
    mf.write_manifest(manifest_path, manifest)
    exp = plan.experiment_dir
    print("\n" + format_table(frames.get("summary")) if frames else "\n(no results)")
    print(f"\nresults:     {exp / 'summary'} (seed_runs.csv, summary.csv, curves.csv, search_trials.csv)")
    print(f"manifest:    {exp / 'manifest.json'}")
    print(f"report:      python -m deca_tune.report {exp}")
    print(f"tensorboard: tensorboard --logdir {exp}")
    print(f"wall time:   {manifest['wall_seconds']:.1f} s", flush=True)
    return 0


def main(argv: Sequence[str] | None = None, callbacks: Sequence[Any] = ()) -> int:
    """Entry point; ``callbacks`` (Tune callbacks) are for programmatic use and tests."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    cfg = parse_args(argv)
    manifest = None
    try:
        if cfg.resume:
            cfg, manifest = resume_config(cfg)
        plan = build_plan(cfg)
    except (UnknownNameError, SearchSpaceError, ResumeError, FileNotFoundError) as exc:
        parser.error(str(exc))
    if cfg.dry_run:
        print(describe(plan))
        if cfg.search == "grid":
            counts = ", ".join(f"{u.key}: {grid_trial_count(u)}" for u in plan.units)
            print(f"grid trials from Tune's variant generator: {counts}")
        print("dry run: nothing was run")
        return 0
    if not cfg.resume and (plan.experiment_dir / "manifest.json").exists():
        parser.error(f"experiment {plan.experiment_dir} exists; add --resume to continue it or "
                     "choose another --name")
    from deca_tune.search.run import ExperimentInterrupted, ResourceError

    try:
        return run_experiment(plan, manifest, callbacks)
    except ResourceError as exc:
        parser.error(str(exc))
    except ExperimentInterrupted as exc:
        print(f"\ninterrupted: {exc}\ncontinue with: python -m deca_tune.search --resume "
              f"--name {plan.experiment_dir.name} --storage-path {plan.experiment_dir.parent}",
              file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
