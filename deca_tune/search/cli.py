"""``python -m deca_tune.search``: the driver. Parse (``config``), plan (``plan``), check
(``checks``), lock (``lock``), then for every unit search and rerun its best configuration with
seeds (``run``, Ray), summarise (``summary``) and record (``manifest``); the console and
``search.log`` are ``console``'s.

For every (data set, backbone, method) unit of the experiment:

1. search its space (``search_spaces/*.yaml``) with Ray Tune: OptunaSearch (TPE, seeded) + ASHA
   on the epoch, or the paper grid; every method gets the same number of trials and epochs;
   trials are ranked by ``score``, the best epoch of the selection metric (noisy validation
   NDCG@20 / accuracy; clean validation with ``--protocol paper``), never by a test metric;
2. rerun the best configuration with every seed of ``--seeds``;
3. write ``summary/*.csv`` and print the mean ± std of the clean-test metrics.

Before Ray starts, everything that can be checked is (``checks``: every spec value for its
method, the searched ranges, data set options, the storage path, an explicit data root, then
every data set loads), and the experiment lock is taken; a failure exits with status 2 naming
the culprit.

Exit status (:data:`EXIT_CODES`): 0 when every unit has all its seed runs finished; 3 when the
experiment ran but some unit has missing seed runs (no search trial finished, or seed runs
failed; one line per unit says which); 2 for bad input (options, specs, paths, data, a held
lock) before Ray started; 130 when interrupted (Ctrl-C) and 143 when stopped by SIGTERM
(``timeout``, systemd, SLURM; handled like Ctrl-C, ``signals``), both resumable with ``--resume``.

The experiment folder layout is in ``docs/architecture.md``. Run with ``--help`` for options and
``--dry-run`` to see the plan. ``--resume`` continues an interrupted experiment: finished trials
and seed runs are kept, unfinished trials continue from their last checkpoint.
"""
from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from deca_tune.options import OptionError
from deca_tune.registry import UnknownNameError
from deca_tune.search.checks import CheckError, check_paths, check_units, load_data
from deca_tune.search.config import ResumeError, build_parser, command_line, parse_args, resume_config
from deca_tune.search.plan import Plan, PlanError, build_plan, describe, grid_trial_count
from deca_tune.search.signals import EXIT_SIGINT, EXIT_SIGTERM, STOP
from deca_tune.tasks import SpecError
from search_spaces.loader import SearchSpaceError

EXIT_OK, EXIT_INPUT, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 2, 3, EXIT_SIGINT, EXIT_SIGTERM
EXIT_CODES = {
    EXIT_OK: "every unit has all its seed runs finished",
    EXIT_INPUT: "bad input before Ray started (options, specs, paths, data sets, a held lock)",
    EXIT_INCOMPLETE: "the experiment ran, but some unit has missing seed runs (see the unit lines)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C): continue with --resume",
    EXIT_TERMINATED: "stopped by SIGTERM (handled like Ctrl-C): continue with --resume",
}
#: errors of what the user typed or planned: exit status 2 before Ray starts
INPUT_ERRORS = (UnknownNameError, SearchSpaceError, ResumeError, PlanError, SpecError, CheckError,
                OptionError, FileNotFoundError)


@dataclass
class UnitOutcome:
    """What one unit achieved in this run (its line in the final summary)."""

    key: str
    trials: int = 0
    statuses: Counter = field(default_factory=Counter)
    first_error: str = ""
    best_score: float | None = None
    seeds_planned: int = 0
    seeds_done: int = 0
    seed_error: str = ""

    @property
    def complete(self) -> bool:
        return self.seeds_planned > 0 and self.seeds_done == self.seeds_planned

    def line(self) -> str:
        s = self.statuses
        trials = (f"{self.trials} trials ({s['completed']} finished, {s['stopped']} stopped by ASHA, "
                  f"{s['error']} failed)")
        if self.best_score is None:
            why = f": {self.first_error}" if self.first_error else ""
            return f"{self.key}: NO RESULTS: {trials}, none usable{why}; no seed runs"
        seeds = f"{self.seeds_done}/{self.seeds_planned} seed runs finished"
        if not self.complete:
            why = f" ({self.seed_error})" if self.seed_error else ""
            return f"{self.key}: INCOMPLETE: {trials}, best score {self.best_score:.4f}, {seeds}{why}"
        return f"{self.key}: ok: {trials}, best score {self.best_score:.4f}, {seeds}"


def _fail(message: str) -> int:
    print(f"python -m deca_tune.search: error: {message}", file=sys.stderr, flush=True)
    return EXIT_INPUT


def run_experiment(plan: Plan, manifest: dict[str, Any] | None, data: dict[str, Any] | None,
                   callbacks: Sequence[Any], log: Any) -> int:
    """Run every unit of ``plan`` (the lock is held, output captured); returns the exit status."""
    from deca_tune.search import disk
    from deca_tune.search import manifest as mf
    from deca_tune.search.console import Progress, active, short
    from deca_tune.search.run import connect, plan_resources, run_search, run_seeds
    from deca_tune.search.summary import format_table, pick_best, search_rows, seed_rows, write_summary

    cfg = plan.cfg
    log.say(f"starting Ray{' at ' + cfg.address if cfg.address else ''} (its output: {log.path})")
    started_ray = connect(cfg.address)
    STOP.install()  # ray.init replaced the SIGTERM handler (with sys.exit)
    log.reroute()  # ray.init may have added console handlers
    started = time.perf_counter()
    run_entry: dict[str, Any] | None = None
    outcome, code = "error", None
    try:
        res = plan_resources(cfg.cpus_per_trial, cfg.gpus_per_trial, cfg.max_concurrent)
        log.say(describe(plan, res.describe()))
        manifest_path = plan.experiment_dir / "manifest.json"
        if manifest is None:
            manifest = mf.build_manifest(plan, data)
        else:
            manifest.setdefault("resumes", []).append({"at": mf.now(), "command": command_line(cfg.argv)})
            for killed in mf.close_killed_runs(manifest, plan.experiment_dir):
                log.say(f"run {killed.get('run')} (started {killed.get('started')}) was killed: closed as "
                        f"'killed' with {killed['wall_seconds']:.1f} s, up to its last checkpoint")
        run_entry = mf.start_run(manifest, cfg.argv)
        run_no = run_entry["run"]
        manifest["resources"] = {"cpus_per_trial": res.cpus, "gpus_per_trial": res.gpus,
                                 "concurrency": res.concurrency, "cluster": res.cluster, "notes": res.notes}
        mf.write_manifest(manifest_path, manifest)

        n_seeds = len(cfg.seeds)
        progress = Progress(log, plan.total_trials + len(plan.units) * n_seeds,
                            plan.units[0].max_epochs if plan.units else 1, budget=plan.total_epochs)
        search_all: list[dict] = []
        runs_all: list[dict] = []
        curves_all: list[dict] = []
        frames: dict = {}
        outcomes: list[UnitOutcome] = []
        with active(progress):
            for i, unit in enumerate(plan.units, 1):
                result = UnitOutcome(unit.key, seeds_planned=n_seeds)
                outcomes.append(result)
                n = unit.n_trials(cfg)
                log.say(f"\n[{i}/{len(plan.units)}] {unit.key}: search, {n} trials")
                progress.begin(unit.key, "search", tuple(unit.space.params), n, unit.max_epochs)
                t0 = time.perf_counter()
                try:
                    grid = run_search(plan, unit, res, callbacks, progress)
                finally:
                    mf.add_seconds(manifest, unit.key, run_no, "search", time.perf_counter() - t0)
                rows = search_rows(unit, grid, plan.experiment_dir)
                best = pick_best(grid)
                manifest["timing"][unit.key].update({
                    "search_trials": len(grid),
                    "search_trial_seconds": sum(float(r["seconds"] or 0) for r in rows),
                    "search_epochs": sum(int(r["epochs"]) for r in rows)})
                result.trials = len(rows)
                result.statuses = Counter(r["status"] for r in rows)
                result.first_error = next((r["error"] for r in rows if r["error"]), "")
                disk.clean_up(manifest, plan.experiment_dir, cfg.keep_checkpoints, grid, "search")
                for row in rows:  # removed with the search's checkpoints (--keep-checkpoints best)
                    if row.get("checkpoint") and not (plan.experiment_dir / row["checkpoint"]).exists():
                        row["checkpoint"] = None
                if best is not None:
                    for row in rows:
                        row["is_best"] = Path(row["path"]).name == Path(best.path).name
                search_all += rows
                if best is None:
                    log.say(f"no search trial of {unit.key} finished without error: no seed runs")
                    progress.begin(unit.key, "seeds", (), n_seeds, unit.max_epochs)
                    progress.account(n_seeds)
                else:
                    result.best_score = float(best.metrics["score"])
                    chosen = {k: best.config[k] for k in unit.space.params}
                    log.say(f"best of {unit.key}: score {best.metrics['score']:.4f} "
                            f"({best.metrics.get('selection_metric')}) with {short(chosen) or 'the spec'}")
                    log.say(f"[{i}/{len(plan.units)}] {unit.key}: seed runs of the best configuration, "
                            f"seeds {' '.join(map(str, cfg.seeds))}")
                    progress.begin(unit.key, "seeds", (), n_seeds, unit.max_epochs)
                    t0 = time.perf_counter()
                    try:
                        seed_grid = run_seeds(plan, unit, best.config, res, callbacks, progress)
                    finally:
                        mf.add_seconds(manifest, unit.key, run_no, "seed", time.perf_counter() - t0)
                    disk.clean_up(manifest, plan.experiment_dir, cfg.keep_checkpoints, seed_grid, "seeds")
                    runs, curves = seed_rows(unit, seed_grid, plan.experiment_dir)
                    manifest["timing"][unit.key]["seed_trial_seconds"] = sum(
                        float(r["seconds"] or 0) for r in runs)
                    result.seeds_done = sum(1 for r in runs if r["status"] != "error")
                    result.seed_error = next((f"seed {r['seed']}: {r['error']}" for r in runs
                                              if r["status"] == "error"), "")
                    runs_all += runs
                    curves_all += curves
                frames = write_summary(plan.experiment_dir, search_all, runs_all, curves_all, cfg.seeds,
                                       manifest["timing"])
                mf.write_manifest(manifest_path, manifest)

        complete = all(o.complete for o in outcomes)
        code = EXIT_OK if complete else EXIT_INCOMPLETE
        disk.record(manifest, plan.experiment_dir, cfg.keep_checkpoints)
        outcome = "finished"
        if complete:
            manifest["finished"] = mf.now()
        mf.finish_run(manifest, run_entry, time.perf_counter() - started, outcome, code)
        manifest["slot_use"] = mf.slot_use(manifest, res.concurrency)
        mf.write_manifest(manifest_path, manifest)
        frames = write_summary(plan.experiment_dir, search_all, runs_all, curves_all, cfg.seeds,
                               manifest["timing"])
        _print_results(plan, manifest, frames, outcomes, code, log, format_table)
        return code
    except BaseException as exc:
        from deca_tune.search.run import ExperimentInterrupted

        if isinstance(exc, (ExperimentInterrupted, KeyboardInterrupt)):
            outcome, code = "interrupted", STOP.exit_status()
        raise
    finally:
        if run_entry is not None and run_entry["outcome"] == "running":
            mf.finish_run(manifest, run_entry, time.perf_counter() - started, outcome, code)
            mf.write_manifest(plan.experiment_dir / "manifest.json", manifest)
        if started_ray:
            import ray

            ray.shutdown()


def _print_results(plan: Plan, manifest: dict[str, Any], frames: dict, outcomes: list[UnitOutcome],
                   code: int, log: Any, format_table: Any) -> None:
    exp = plan.experiment_dir
    log.say("\n" + format_table(frames.get("summary")) if frames else "\n(no results)")
    runs = manifest.get("runs", [])
    this = runs[-1]["wall_seconds"] if runs else 0.0
    total = f", {manifest['wall_seconds']:.1f} s over {len(runs)} runs" if len(runs) > 1 else ""
    log.say(f"\nresults:     {exp / 'summary'} (seed_runs.csv, summary.csv, curves.csv, search_trials.csv)")
    log.say(f"log:         {exp / 'search.log'}; manifest: {exp / 'manifest.json'}")
    log.say(f"report:      python -m deca_tune.report {exp}")
    log.say(f"tensorboard: tensorboard --logdir {exp}")
    if plan.cfg.search == "optuna":
        log.say(f"optuna:      optuna-dashboard sqlite:///{exp / 'optuna'}/<unit>.db")
    log.say(f"wall time:   {this:.1f} s{total}")
    use = manifest.get("slot_use") or {}
    if use.get("ratio"):
        log.say(f"slots:       trials took {use['trial_seconds']:.1f} s on {use['slots']} slot(s) = "
                f"{use['ideal_wall_seconds']:.1f} s if packed; wall / that = {use['ratio']:.2f} "
                f"(target <= {use['target']:g}; the rest is start-up and idle slots)")
    if manifest.get("disk"):
        from deca_tune.search.disk import describe as disk_line

        log.say(f"disk:        {disk_line(manifest['disk'])}")
    log.say("units:")
    for i, outcome in enumerate(outcomes, 1):
        log.say(f"  [{i}] {outcome.line()}")
    log.say(f"exit status {code}: {EXIT_CODES[code]}")


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
        check_paths(plan)
        check_units(plan)
    except INPUT_ERRORS as exc:
        parser.fail(str(exc))  # a value that fails a check: no usage block
    if cfg.dry_run:
        print(describe(plan))
        if cfg.search == "grid":
            counts = ", ".join(f"{u.key}: {grid_trial_count(u)}" for u in plan.units)
            print(f"grid trials from Tune's variant generator: {counts}")
        print("checked: every spec and searched range, the data set options, the storage path and "
              "the data root (data sets load when the experiment runs)")
        print("dry run: nothing was run")
        return EXIT_OK
    manifest_path = plan.experiment_dir / "manifest.json"
    if not cfg.resume and manifest_path.exists():
        return _fail(f"experiment {plan.experiment_dir} exists; add --resume to continue it or "
                     "choose another --name")
    with STOP:  # SIGTERM = Ctrl-C from here on
        try:
            data = load_data(plan)
        except CheckError as exc:
            return _fail(str(exc))
        except KeyboardInterrupt:
            return STOP.exit_status()
        return _locked_run(plan, manifest, data, callbacks)


def _locked_run(plan: Plan, manifest: dict[str, Any] | None, data: dict[str, Any],
                callbacks: Sequence[Any]) -> int:
    from deca_tune.search.console import LOG_FILE, RunLog, capture
    from deca_tune.search.lock import ExperimentLock, LockError
    from deca_tune.search.manifest import ManifestError, read_manifest

    cfg = plan.cfg
    lock = ExperimentLock(plan.experiment_dir, command_line(cfg.argv))
    try:
        lock.acquire()
    except LockError as exc:
        return _fail(str(exc))
    log = RunLog(plan.experiment_dir / LOG_FILE, cfg.verbose)
    errors = sys.stderr
    discard = False
    try:
        manifest_path = plan.experiment_dir / "manifest.json"
        if cfg.resume:
            try:
                manifest = read_manifest(manifest_path)  # as the last driver left it
            except ManifestError as exc:
                return _fail(f"--resume: {exc}")
        elif manifest_path.exists():  # created while this driver loaded its data
            return _fail(f"experiment {plan.experiment_dir} exists; add --resume to continue it")
        log.open()
        log.write_file(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {command_line(cfg.argv)}\n")
        if lock.note:
            log.say(lock.note)
        from deca_tune.search.run import ExperimentInterrupted, ResourceError

        try:
            with capture(log):
                return run_experiment(plan, manifest, data, callbacks, log)
        except ResourceError as exc:
            log.say(f"python -m deca_tune.search: error: {exc}", stream=errors)
            discard = not manifest_path.exists()  # a new experiment that never started
            return EXIT_INPUT
        except (ExperimentInterrupted, KeyboardInterrupt) as exc:
            what = f": {exc}" if str(exc) else ""
            by = " by SIGTERM" if STOP.received == "SIGTERM" else ""
            log.say(f"\ninterrupted{by}{what}\ncontinue with: python -m deca_tune.search --resume "
                    f"--name {plan.experiment_dir.name} --storage-path {plan.experiment_dir.parent}",
                    stream=errors)
            return STOP.exit_status()
    finally:
        log.close()
        lock.release()
        if discard:  # leave no half-made experiment behind: remove what this start wrote
            for name in (LOG_FILE, ".lock", ".lock.guard"):
                (plan.experiment_dir / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                plan.experiment_dir.rmdir()  # only if nothing else is in it


if __name__ == "__main__":
    sys.exit(main())
