"""What the driver prints, and ``<experiment>/search.log``.

The console (``--verbose``):

- 0: the plan, one header per unit phase, the best configuration of each unit, the results;
- 1 (default): also one line per trial event, each led by the progress of the experiment
  (elapsed time, trials done / planned, share of the epoch budget, ETA), and on a terminal a
  live progress bar with the latest report;
- 2: also Ray Tune's own output (status tables, configuration boxes, Ray's log lines).

Trial events (:class:`Progress`, fed by the Tune callback :class:`ConsoleCallback`): a trial
started (its searched values) or resumed from a checkpoint, finished (score and best epoch),
stopped by ASHA (after which epoch, with which score), failed (the one-line reason; whether it
was retried), or crashed and is being retried from its checkpoint.

``search.log`` receives every console line plus everything Ray, Tune and Optuna print in the
driver and what the Ray workers print (``log_to_driver``), whatever the verbosity:
:func:`capture` routes ``sys.stdout``/``sys.stderr`` and the ``ray``/``optuna``/warnings
loggers there while the experiment runs. Each run of the driver appends to it.
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from ray import tune

from trainables import SCORE, TRIAL_ERROR

LOG_FILE = "search.log"


def clock(seconds: float) -> str:
    """``75`` -> ``"1:15"``, ``3700`` -> ``"1:01:40"``."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def last_line(text: str | None) -> str:
    """The line of an error text that says what went wrong (Ray puts it last)."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("Failure #", "Traceback", "File "))] or lines
    return lines[-1][:300] if lines else "unknown error"


class RunLog:
    """The console plus ``search.log``: :meth:`say` writes a line to both."""

    def __init__(self, path: str | Path | None, verbose: int = 1, stream: IO[str] | None = None) -> None:
        self.console = stream or sys.stdout
        self.verbose = verbose
        self.path = Path(path) if path else None
        self.file: IO[str] | None = None
        self.lock = threading.RLock()
        self.status: str = ""  # the live progress bar (terminals only)
        self.live = bool(getattr(self.console, "isatty", lambda: False)()) and verbose == 1
        self.reroute: Any = lambda: None  # set by capture(): route loggers added since

    def open(self) -> "RunLog":
        if self.path is not None and self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a", buffering=1, encoding="utf-8")
        return self

    def close(self) -> None:
        self.clear_status()
        if self.file is not None:
            self.file.close()
            self.file = None

    def write_file(self, text: str) -> None:
        with self.lock:
            if self.file is not None and not self.file.closed:
                self.file.write(text)

    def say(self, text: str = "", level: int = 0, stream: IO[str] | None = None) -> None:
        """``text`` to the console (if ``verbose >= level``) and always to the log file."""
        with self.lock:
            self.write_file(text + "\n")
            if self.verbose >= level:
                out = stream or self.console
                if self.live and self.status and out is self.console:
                    out.write("\r\033[K")
                out.write(text + "\n")
                if self.live and self.status and out is self.console:
                    out.write(self.status)
                out.flush()

    def set_status(self, text: str) -> None:
        if not self.live:
            return
        with self.lock:
            self.status = text
            self.console.write("\r\033[K" + text)
            self.console.flush()

    def clear_status(self) -> None:
        if self.live and self.status:
            with self.lock:
                self.console.write("\r\033[K")
                self.console.flush()
                self.status = ""


class _Tee:
    """A text stream writing to the log file and, if given, to a console stream."""

    def __init__(self, log: RunLog, echo: IO[str] | None) -> None:
        self.log, self.echo = log, echo

    def write(self, text: str) -> int:
        self.log.write_file(text)
        if self.echo is not None:
            self.echo.write(text)
        return len(text)

    def flush(self) -> None:
        if self.echo is not None:
            self.echo.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:  # some libraries ask; the console's descriptor is the honest answer
        return (self.echo or sys.__stdout__).fileno()


#: loggers whose console handlers are routed to the log file (their children propagate to them)
LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "optuna", "py.warnings", "filelock")


@contextlib.contextmanager
def capture(log: RunLog) -> Iterator[None]:
    """Route Ray's, Tune's and Optuna's output to the log file (and the console at verbose 2)."""
    echo = log.verbose >= 2
    handler = logging.StreamHandler(_Tee(log, None))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved: list[tuple[logging.Logger, list[logging.Handler], bool]] = []

    def route(name: str) -> None:
        logger = logging.getLogger(name)
        if any(entry[0] is logger for entry in saved):
            return
        saved.append((logger, list(logger.handlers), logger.propagate))
        streams = [h for h in logger.handlers if type(h) is not logging.FileHandler
                   and isinstance(h, logging.StreamHandler)]
        if not echo:
            for h in streams:
                logger.removeHandler(h)
        if name == "py.warnings" or streams or logger is logging.getLogger("ray"):
            logger.addHandler(handler)
            logger.propagate = False

    was_capturing = logging.getLogger("py.warnings").handlers
    logging.captureWarnings(True)
    for name in LOGGERS:
        route(name)
    out = _Tee(log, sys.stdout if echo else None)
    err = _Tee(log, sys.stderr if echo else None)
    log.reroute = lambda: [route(n) for n in LOGGERS]  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):  # type: ignore[type-var]
            yield
    finally:
        for logger, handlers, propagate in reversed(saved):
            logger.handlers = handlers
            logger.propagate = propagate
        if not was_capturing:
            logging.captureWarnings(False)


# ------------------------------------------------------------------------------------ progress
@dataclass
class _Phase:
    unit: str
    kind: str  # "search" or "seeds"
    params: tuple[str, ...]
    trials: int
    max_epochs: int  # epochs of one of its trials (its unit's budget)


@dataclass
class Progress:
    """Counts and lines of trial events over the whole experiment (one driver run). Several units
    may run at once (``--overlap``): each trial event names its phase (unit and kind), so a
    trial's label and epoch budget are its own unit's."""

    log: RunLog
    total_trials: int
    max_epochs: int  # epochs of a trial of a phase not announced with begin()
    budget: float | None = None  # epochs of the whole experiment (default: trials x max_epochs)
    started: float = field(default_factory=time.perf_counter)
    done_trials: int = 0
    done_budget: float = 0.0  # epochs of the budget used up (ended trials count in full)
    run_budget: float = 0.0  # ... of which by trials that ended in this run (the ETA's rate)
    running: dict[str, int] = field(default_factory=dict)  # trial id -> epochs reported
    limits: dict[str, int] = field(default_factory=dict)  # trial id -> its phase's max epochs
    phases: dict[tuple[str, str], _Phase] = field(default_factory=dict)
    phase: _Phase | None = None  # the phase begun last (events that name none)
    last_report: str = ""
    show_units: bool = False  # lead trial lines with their unit (units run at once)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()  # events arrive from every running unit's Tuner thread

    @property
    def total_budget(self) -> float:
        return float(self.budget if self.budget is not None else self.total_trials * self.max_epochs)

    def _running_epochs(self) -> float:
        return sum(min(e, self.limits.get(t, self.max_epochs)) for t, e in self.running.items())

    def fraction(self) -> float:
        used = self.done_budget + self._running_epochs()
        return min(1.0, used / self.total_budget) if self.total_budget else 1.0

    def eta(self) -> float:
        """Seconds left: the budget left at the rate of this run (NaN until a trial reported)."""
        if self.fraction() >= 1.0:
            return 0.0
        used = self.run_budget + self._running_epochs()
        left = self.total_budget * (1.0 - self.fraction())
        elapsed = time.perf_counter() - self.started
        return elapsed * left / used if used > 0 and elapsed >= 1 else math.nan

    def prefix(self) -> str:
        elapsed = time.perf_counter() - self.started
        return (f"{clock(elapsed):>5} [{self.done_trials:>{len(str(self.total_trials))}}/{self.total_trials} "
                f"trials {self.fraction():4.0%} ETA {clock(self.eta())}]")

    # -------------------------------------------------------------- phases
    def begin(self, unit: str, kind: str, params: tuple[str, ...], trials: int,
              max_epochs: int | None = None) -> None:
        with self.lock:
            self.phase = _Phase(unit, kind, tuple(params), trials,
                                self.max_epochs if max_epochs is None else max_epochs)
            self.phases[(unit, kind)] = self.phase

    def _phase_of(self, key: tuple[str, str] | None) -> _Phase | None:
        return self.phases.get(key, self.phase) if key is not None else self.phase

    def account(self, trials: int, epochs: float | None = None,
                phase: tuple[str, str] | None = None) -> None:
        """Trials ended in an earlier run of the driver (resume) or skipped (a unit without
        seeds); ``phase``: ``(unit, kind)`` (default: the phase begun last)."""
        with self.lock:
            found = self._phase_of(phase)
            per_trial = found.max_epochs if found is not None else self.max_epochs
            self.done_trials += trials
            self.done_budget += trials * per_trial if epochs is None else epochs

    # -------------------------------------------------------------- events
    def event(self, trial_id: str, text: str) -> None:
        with self.lock:
            self.log.say(f"{self.prefix()} {trial_id} {text}", level=1)
            self.refresh()

    def refresh(self) -> None:
        if self.log.live:
            bar_width = 20
            frac = self.fraction()
            bar = "#" * int(bar_width * frac) + "-" * (bar_width - int(bar_width * frac))
            self.log.set_status(f"{self.prefix()} [{bar}] {self.last_report}"[:150])

    def _label(self, trial: Any, phase: _Phase | None) -> str:
        config = getattr(trial, "config", {}) or {}
        if phase is not None and phase.kind == "seeds":
            text = f"seed {config.get('seed')}"
        else:
            params = phase.params if phase is not None else ()
            text = " ".join(f"{k}={_fmt(config.get(k))}" for k in params) or "(nothing searched)"
        return f"{phase.unit}: {text}" if phase is not None and self.show_units else text

    def on_start(self, trial: Any, phase: tuple[str, str] | None = None) -> None:
        with self.lock:
            found = self._phase_of(phase)
            tid = trial.trial_id
            resumed = _restored_epoch(trial)
            self.running[tid] = resumed or 0
            self.limits[tid] = found.max_epochs if found is not None else self.max_epochs
            what = f"resumed from its epoch-{resumed} checkpoint" if resumed else "started"
            self.event(tid, f"{what}: {self._label(trial, found)}")

    def on_result(self, trial: Any, result: dict[str, Any]) -> None:
        if TRIAL_ERROR in result or "epoch" not in result:
            return
        with self.lock:
            epoch = int(result.get("epoch") or 0)
            self.running[trial.trial_id] = epoch
            self.last_report = f"{trial.trial_id} epoch {epoch}: score {_fmt(result.get(SCORE))}"
            self.refresh()

    def _end(self, trial: Any, phase: tuple[str, str] | None) -> None:
        found = self._phase_of(phase)
        budget = self.limits.pop(trial.trial_id, found.max_epochs if found is not None else self.max_epochs)
        self.running.pop(trial.trial_id, None)
        self.done_trials += 1
        self.done_budget += budget
        self.run_budget += budget

    def on_complete(self, trial: Any, phase: tuple[str, str] | None = None) -> None:
        last = dict(getattr(trial, "last_result", None) or {})
        with self.lock:
            self._end(trial, phase)
            self._report_end(trial, last)

    def _report_end(self, trial: Any, last: dict[str, Any]) -> None:
        tid = trial.trial_id
        if last.get(TRIAL_ERROR):
            self.event(tid, f"failed: {last[TRIAL_ERROR]} (deterministic: not retried)")
        elif last.get("trainer_finished"):
            self.event(tid, f"finished: score {_fmt(last.get(SCORE))} (best epoch "
                            f"{_fmt(last.get('best_epoch'))} of {_fmt(last.get('epoch'))})")
        else:
            self.event(tid, f"stopped by ASHA after epoch {_fmt(last.get('epoch'))}: score "
                            f"{_fmt(last.get(SCORE))}")

    def on_error(self, trial: Any, phase: tuple[str, str] | None = None) -> None:
        with self.lock:
            self._end(trial, phase)
        failures = getattr(getattr(trial, "run_metadata", None), "num_failures", None)
        tries = f" after {failures} attempt(s)" if failures and failures > 1 else ""
        self.event(trial.trial_id, f"failed{tries}: {trial_error_text(trial)}")

    def on_recover(self, trial: Any) -> None:
        self.event(trial.trial_id, f"crashed ({trial_error_text(trial)}); retrying from its last "
                                   "checkpoint")


def _fmt(value: Any) -> str:
    """Short numbers: ``0.0016051911`` -> ``0.001605``, ``3.0`` -> ``3``."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    return str(value)


def short(config: dict[str, Any]) -> str:
    """``{'lr': 0.00160519, 'l2': 5.3017}`` -> ``lr=0.001605 l2=5.302``."""
    return " ".join(f"{k}={_fmt(v)}" for k, v in config.items())


def _restored_epoch(trial: Any) -> int:
    """The epoch of the checkpoint a (resumed or retried) trial starts from; 0 for a new trial."""
    try:
        if getattr(trial, "checkpoint", None) is None:
            return 0
        return int(float((trial.last_result or {}).get("epoch") or 0))
    except Exception:  # noqa: BLE001 - cosmetic
        return 0


def trial_error_text(trial: Any) -> str:
    """The one-line reason of a trial's (latest) error, from its ``error.txt``."""
    try:
        path = getattr(trial, "error_file", None)
        if path and Path(path).is_file():
            return last_line(Path(path).read_text(errors="replace"))
    except Exception:  # noqa: BLE001
        pass
    return "see search.log"


#: the experiment's progress that :class:`ConsoleCallback` reports to (one per driver process)
_ACTIVE: list[Progress] = []


@contextlib.contextmanager
def active(progress: Progress) -> Iterator[Progress]:
    _ACTIVE.append(progress)
    try:
        yield progress
    finally:
        _ACTIVE.remove(progress)


class ConsoleCallback(tune.Callback):
    """Tune callback feeding the active :class:`Progress`, naming the phase (``unit``, ``kind``)
    of the Tuner it belongs to. It holds no other state, so the copy that a restored Tuner
    unpickles (``--resume``) reports to the current driver's progress."""

    def __init__(self, unit: str | None = None, kind: str | None = None) -> None:
        self.phase = (unit, kind) if unit is not None and kind is not None else None

    def _progress(self) -> Progress | None:
        return _ACTIVE[-1] if _ACTIVE else None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if (p := self._progress()) is not None:
            p.on_start(trial, self.phase)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if (p := self._progress()) is not None:
            p.on_result(trial, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if (p := self._progress()) is not None:
            p.on_complete(trial, self.phase)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if (p := self._progress()) is not None:
            p.on_error(trial, self.phase)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if (p := self._progress()) is not None:
            p.on_recover(trial)


__all__ = ["ConsoleCallback", "LOG_FILE", "Progress", "RunLog", "active", "capture", "clock", "last_line",
           "short"]
