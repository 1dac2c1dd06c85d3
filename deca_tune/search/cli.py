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
from typing import Any, Sequence

from deca_tune.options import OptionError
from deca_tune.registry import UnknownNameError
from deca_tune.search.checks import CheckError, check_paths, check_units, load_data
from deca_tune.search.config import ResumeError, build_parser, command_line, parse_args, resume_config
from deca_tune.search.plan import Plan, PlanError, build_plan, describe, grid_trial_count
from deca_tune.search.signals import EXIT_SIGINT, EXIT_SIGTERM, STOP
from deca_tune.search.summary import finished_units
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


def _fail(message: str) -> int:
    print(f"python -m deca_tune.search: error: {message}", file=sys.stderr, flush=True)
    return EXIT_INPUT


def run_experiment(plan: Plan, manifest: dict[str, Any] | None, data: dict[str, Any] | None,
                   callbacks: Sequence[Any], log: Any, load_seconds: float = 0.0) -> int:
    """Run every unit of ``plan`` (the lock is held, output captured); returns the exit status
    (``deca_tune.search.experiment``: start, units, finish)."""
    from deca_tune.search.experiment import ExperimentRun

    return ExperimentRun(plan, manifest, data, callbacks, log, load_seconds).execute()


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
        if cfg.resume:
            kept = finished_units(plan.experiment_dir, plan.units, cfg.seeds)
            print(f"--resume: {len(kept)} of {len(plan.units)} units finished in an earlier run "
                  f"(kept from {plan.experiment_dir / 'summary'}), {len(plan.units) - len(kept)} to run")
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
            loading = time.perf_counter()
            data = load_data(plan)
            load_seconds = time.perf_counter() - loading
        except CheckError as exc:
            return _fail(str(exc))
        except KeyboardInterrupt:
            return STOP.exit_status()
        return _locked_run(plan, manifest, data, callbacks, load_seconds)


def _locked_run(plan: Plan, manifest: dict[str, Any] | None, data: dict[str, Any],
                callbacks: Sequence[Any], load_seconds: float = 0.0) -> int:
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
                return run_experiment(plan, manifest, data, callbacks, log, load_seconds)
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
