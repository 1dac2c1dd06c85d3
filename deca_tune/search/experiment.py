"""One run of the search driver, as phases over one object (:class:`ExperimentRun`).

``cli`` parses, plans, checks, loads the data and takes the lock; then :meth:`ExperimentRun.execute`:

1. :meth:`~ExperimentRun.start`: Ray (``run.connect``), the resources, the manifest (new, or the
   one ``--resume`` continues) and this run's entry in it, the data sets put into Ray's object
   store once (``run.share_data``) and the trainable registered once by name
   (``run.register_trial``: Tune's registry is not thread-safe), the console's progress;
2. :meth:`~ExperimentRun.run_units`: every unit's pipeline (:meth:`~ExperimentRun.run_unit`:
   search, best configuration, seed reruns, its rows of the summary), ``--overlap`` units at a
   time, so that while one unit's tail leaves a slot idle (ASHA's last trials, 3 seed runs on 2
   slots) the next unit's trials take it;
3. :meth:`~ExperimentRun.finish`: slot use, disk use, the summary tables, the exit status.

Units in flight at once run in threads, each fitting its own Tuners; they share one Ray cluster,
whose scheduler hands each free slot to whichever Tuner has a trial waiting. Tune catches Ctrl-C
only in the main thread, so here the driver's handler sets one stop event that every Tuner watches
(``run.shared_stop``): each saves its state with unfinished trials resumable, as a lone Tuner does,
and units not started yet are not started. Everything the units share (manifest, rows, outcomes)
is changed under one lock; the Tune fits run outside it.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from deca_tune.search import disk
from deca_tune.search import manifest as mf
from deca_tune.search.config import command_line
from deca_tune.search.console import Progress, active, short
from deca_tune.search.plan import Plan, Unit, describe
from deca_tune.search.run import (ExperimentInterrupted, can_share_stop, connect, plan_resources,
                                  register_trial, run_search, run_seeds, share_data, shared_stop)
from deca_tune.search.signals import STOP
from deca_tune.search.summary import (finished_units, format_table, pick_best, search_rows, seed_rows,
                                      write_summary)

EXIT_OK, EXIT_INCOMPLETE = 0, 3


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


class ExperimentRun:
    """One run of the driver over ``plan`` (the lock is held, output captured by ``log``)."""

    def __init__(self, plan: Plan, manifest: dict[str, Any] | None, data: dict[str, Any] | None,
                 callbacks: Sequence[Any], log: Any, load_seconds: float = 0.0) -> None:
        self.plan, self.cfg, self.manifest, self.data = plan, plan.cfg, manifest, data
        self.callbacks, self.log, self.load_seconds = list(callbacks), log, load_seconds
        self.manifest_path = plan.experiment_dir / "manifest.json"
        self.lock = threading.RLock()  # what the units share: manifest, rows, outcomes, files
        self.outcomes = {u.key: UnitOutcome(u.key, seeds_planned=len(self.cfg.seeds)) for u in plan.units}
        #: per unit: its rows of search_trials.csv, seed_runs.csv and curves.csv
        self.rows: dict[str, dict[str, list[dict]]] = {
            u.key: {"search": [], "runs": [], "curves": []} for u in plan.units}
        #: units an earlier run finished (``--resume``): kept from summary/*.csv, not rerun
        self.carried = finished_units(plan.experiment_dir, plan.units, self.cfg.seeds) if self.cfg.resume else {}
        self.run_entry: dict[str, Any] | None = None
        self.res: Any = None
        self.trainable = ""  # the registered trainable's name (start)
        self.progress: Progress | None = None
        self.started = 0.0

    # ------------------------------------------------------------------ the run
    def execute(self) -> int:
        """Start, run the units, finish; returns the exit status (interruptions raise)."""
        cfg, log = self.cfg, self.log
        log.say(f"starting Ray{' at ' + cfg.address if cfg.address else ''} (its output: {log.path})")
        started_ray = connect(cfg.address)
        STOP.install()  # ray.init replaced the SIGTERM handler (with sys.exit)
        log.reroute()  # ray.init may have added console handlers
        self.started = time.perf_counter()
        outcome, code = "error", None
        try:
            self.start()
            assert self.progress is not None
            with active(self.progress):
                self.run_units()
            return self.finish()
        except (ExperimentInterrupted, KeyboardInterrupt):
            outcome, code = "interrupted", STOP.exit_status()
            raise
        finally:
            if self.run_entry is not None and self.run_entry["outcome"] == "running":
                mf.finish_run(self.manifest, self.run_entry, time.perf_counter() - self.started, outcome, code)
                mf.write_manifest(self.manifest_path, self.manifest)
            if started_ray:
                import ray

                ray.shutdown()

    def start(self) -> None:
        """Resources, the manifest and this run's entry, the shared data, the progress."""
        plan, cfg, log = self.plan, self.cfg, self.log
        self.res = res = plan_resources(cfg.cpus_per_trial, cfg.gpus_per_trial, cfg.max_concurrent)
        log.say(describe(plan, res.describe()))
        if self.manifest is None:
            self.manifest = mf.build_manifest(plan, self.data)
        else:
            self.manifest.setdefault("resumes", []).append({"at": mf.now(), "command": command_line(cfg.argv)})
            for killed in mf.close_killed_runs(self.manifest, plan.experiment_dir):
                log.say(f"run {killed.get('run')} (started {killed.get('started')}) was killed: closed as "
                        f"'killed' with {killed['wall_seconds']:.1f} s, up to its last checkpoint")
        self.run_entry = mf.start_run(self.manifest, cfg.argv)
        shared, share_seconds = share_data()
        self.trainable = register_trial(res, shared)
        self.run_entry.update({"load_seconds": self.load_seconds, "share_seconds": share_seconds,
                               "overlap": self.overlap})
        self.manifest["resources"] = {"cpus_per_trial": res.cpus, "gpus_per_trial": res.gpus,
                                      "concurrency": res.concurrency, "cluster": res.cluster,
                                      "notes": res.notes}
        mf.write_manifest(self.manifest_path, self.manifest)
        self.progress = Progress(log, plan.total_trials + len(plan.units) * len(cfg.seeds),
                                 plan.units[0].max_epochs if plan.units else 1, budget=plan.total_epochs,
                                 show_units=self.overlap > 1)

    @property
    def overlap(self) -> int:
        """Units in flight at once (``--overlap``, at most the number of units)."""
        wanted = max(1, min(int(self.cfg.overlap), len(self.plan.units)))
        return wanted if wanted == 1 or can_share_stop() else 1

    def run_units(self) -> None:
        """Every unit's pipeline, :attr:`overlap` at a time (in plan order)."""
        units = list(enumerate(self.plan.units, 1))
        if self.overlap == 1:
            for i, unit in units:
                self.run_unit(i, unit)
            return
        stop = threading.Event()
        with shared_stop(stop), _stop_on_signal(stop), \
                ThreadPoolExecutor(self.overlap, thread_name_prefix="unit") as pool:
            futures = [pool.submit(self._unit_unless_stopped, stop, i, unit) for i, unit in units]
            wait(futures)
        errors = [f.exception() for f in futures if f.exception() is not None]
        interrupted = [e for e in errors if isinstance(e, ExperimentInterrupted)]
        others = [e for e in errors if not isinstance(e, ExperimentInterrupted)]
        if others:
            raise others[0]
        skipped = sum(1 for f in futures if f.exception() is None and f.result() is False)
        if interrupted or skipped:  # a stop that came after every unit had ended changes nothing
            left = sum(e.unfinished for e in interrupted)
            expected = sum(e.expected for e in interrupted)
            parts = [f"{e}" for e in interrupted]
            if skipped:
                parts.append(f"{skipped} unit(s) not started")
            raise ExperimentInterrupted("; ".join(parts), left, expected)

    def _unit_unless_stopped(self, stop: threading.Event, i: int, unit: Unit) -> bool:
        """Run the unit unless the experiment was stopped; an unexpected error stops the other
        units in flight too (resumably) before it reaches the driver."""
        if stop.is_set():
            return False
        try:
            self.run_unit(i, unit)
        except ExperimentInterrupted:
            raise
        except BaseException:
            stop.set()
            raise
        return True

    def run_unit(self, i: int, unit: Unit) -> None:
        """Search ``unit``, pick its best trial, rerun it per seed, write the summary so far."""
        plan, cfg, log, res, progress = self.plan, self.cfg, self.log, self.res, self.progress
        assert progress is not None and self.run_entry is not None
        run_no, n_seeds = self.run_entry["run"], len(cfg.seeds)
        result = self.outcomes[unit.key]
        n = unit.n_trials(cfg)
        if unit.key in self.carried:
            self._keep_finished(i, unit, n)
            return
        with self.lock:
            log.say(f"\n[{i}/{len(plan.units)}] {unit.key}: search, {n} trials")
            progress.begin(unit.key, "search", tuple(unit.space.params), n, unit.max_epochs)
        t0 = time.perf_counter()
        try:
            grid = run_search(plan, unit, res, self.callbacks, progress, self.trainable)
        finally:
            with self.lock:
                mf.add_seconds(self.manifest, unit.key, run_no, "search", time.perf_counter() - t0)
        with self.lock:
            rows = search_rows(unit, grid, plan.experiment_dir)
            best = pick_best(grid)
            self.manifest["timing"][unit.key].update({
                "search_trials": len(grid),
                "search_trial_seconds": sum(float(r["seconds"] or 0) for r in rows),
                "search_epochs": sum(int(r["epochs"]) for r in rows)})
            result.trials = len(rows)
            result.statuses = Counter(r["status"] for r in rows)
            result.first_error = next((r["error"] for r in rows if r["error"]), "")
            disk.clean_up(self.manifest, plan.experiment_dir, cfg.keep_checkpoints, grid, "search")
            for row in rows:  # removed with the search's checkpoints (--keep-checkpoints best)
                if row.get("checkpoint") and not (plan.experiment_dir / row["checkpoint"]).exists():
                    row["checkpoint"] = None
            if best is not None:
                for row in rows:
                    row["is_best"] = Path(row["path"]).name == Path(best.path).name
            self.rows[unit.key]["search"] = rows
            progress.begin(unit.key, "seeds", (), n_seeds, unit.max_epochs)
            if best is None:
                log.say(f"no search trial of {unit.key} finished without error: no seed runs")
                progress.account(n_seeds, phase=(unit.key, "seeds"))
            else:
                result.best_score = float(best.metrics["score"])
                chosen = {k: best.config[k] for k in unit.space.params}
                log.say(f"best of {unit.key}: score {best.metrics['score']:.4f} "
                        f"({best.metrics.get('selection_metric')}) with {short(chosen) or 'the spec'}")
                log.say(f"[{i}/{len(plan.units)}] {unit.key}: seed runs of the best configuration, "
                        f"seeds {' '.join(map(str, cfg.seeds))}")
        if best is not None:
            t0 = time.perf_counter()
            try:
                seed_grid = run_seeds(plan, unit, best.config, res, self.callbacks, progress, self.trainable)
            finally:
                with self.lock:
                    mf.add_seconds(self.manifest, unit.key, run_no, "seed", time.perf_counter() - t0)
            with self.lock:
                disk.clean_up(self.manifest, plan.experiment_dir, cfg.keep_checkpoints, seed_grid, "seeds")
                runs, curves = seed_rows(unit, seed_grid, plan.experiment_dir)
                self.manifest["timing"][unit.key]["seed_trial_seconds"] = sum(
                    float(r["seconds"] or 0) for r in runs)
                result.seeds_done = sum(1 for r in runs if r["status"] != "error")
                result.seed_error = next((f"seed {r['seed']}: {r['error']}" for r in runs
                                          if r["status"] == "error"), "")
                self.rows[unit.key].update(runs=runs, curves=curves)
        with self.lock:
            self.write_summary()
            mf.write_manifest(self.manifest_path, self.manifest)

    def _keep_finished(self, i: int, unit: Unit, n: int) -> None:
        """A unit an earlier run finished: its rows from the summary, counted as done."""
        rows, result, progress = self.carried[unit.key], self.outcomes[unit.key], self.progress
        assert progress is not None
        with self.lock:
            self.rows[unit.key] = rows
            result.trials = len(rows["search"])
            result.statuses = Counter(str(r.get("status")) for r in rows["search"])
            scores = [float(r["score"]) for r in rows["search"] if r.get("is_best") and r.get("score") is not None]
            result.best_score = scores[0] if scores else None
            result.seeds_done = result.seeds_planned
            for kind, count in (("search", n), ("seeds", len(self.cfg.seeds))):
                progress.begin(unit.key, kind, (), count, unit.max_epochs)
                progress.account(count, phase=(unit.key, kind))
            self.log.say(f"[{i}/{len(self.plan.units)}] {unit.key}: finished in an earlier run "
                         f"({result.trials} trials, {result.seeds_done} seed runs in summary/): kept")

    def write_summary(self) -> dict:
        """``summary/*.csv`` from the rows so far, units in plan order."""
        def rows(kind: str) -> list[dict]:
            return [row for u in self.plan.units for row in self.rows[u.key][kind]]

        return write_summary(self.plan.experiment_dir, rows("search"), rows("runs"), rows("curves"),
                             self.cfg.seeds, self.manifest["timing"])

    def finish(self) -> int:
        """Disk and slot use, the summary, the closing lines; returns the exit status."""
        manifest, cfg = self.manifest, self.cfg
        outcomes = [self.outcomes[u.key] for u in self.plan.units]
        complete = all(o.complete for o in outcomes)
        code = EXIT_OK if complete else EXIT_INCOMPLETE
        disk.record(manifest, self.plan.experiment_dir, cfg.keep_checkpoints)
        if complete:
            manifest["finished"] = mf.now()
        mf.finish_run(manifest, self.run_entry, time.perf_counter() - self.started, "finished", code)
        mf.write_manifest(self.manifest_path, manifest)
        frames = self.write_summary()
        self.print_results(frames, outcomes, code)
        return code

    def print_results(self, frames: dict, outcomes: list[UnitOutcome], code: int) -> None:
        from deca_tune.search.cli import EXIT_CODES

        plan, manifest, log = self.plan, self.manifest, self.log
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
                    f"(target <= {use['target']:g}; the rest is start-up and idle slots; "
                    f"{self.overlap} unit(s) at a time)")
        if manifest.get("disk"):
            log.say(f"disk:        {disk.describe(manifest['disk'])}")
        log.say("units:")
        for i, outcome in enumerate(outcomes, 1):
            log.say(f"  [{i}] {outcome.line()}")
        log.say(f"exit status {code}: {EXIT_CODES[code]}")


@contextlib.contextmanager
def _stop_on_signal(stop: threading.Event) -> Iterator[None]:
    """In the main thread, Ctrl-C (and SIGTERM, which ``STOP`` turns into it) sets ``stop``;
    a second Ctrl-C gets the previous handler back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        stop.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is on_sigint:
            signal.signal(signal.SIGINT, previous)


__all__ = ["ExperimentRun", "UnitOutcome"]
