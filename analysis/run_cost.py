"""What an experiment cost: wall time per run of the driver, slot use, disk (issue 22).

Read from ``manifest.json`` only (``deca_tune.search`` records it): ``runs`` (one entry per run
of the driver: started, finished, outcome, wall seconds, the code's git state), ``timing`` (per
unit: the phases' wall seconds per run and the trials' own seconds), ``slot_use`` (the trials'
own seconds over the slots against the wall time) and ``disk`` (peak and final size of the
experiment folder). An experiment resumed across sessions is one row per session's run and a
row for the whole.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.experiment import Experiment
from analysis.tables import Table

COLUMNS = ["started", "finished", "outcome", "wall (s)", "units worked on", "code",
           "trial seconds", "slots", "wall / packed", "disk peak", "disk final"]
WHOLE = "all runs"


def _time(stamp: Any) -> str:
    """``2026-12-05T01:43:45+00:00`` -> ``2026-12-05 01:43``."""
    return str(stamp)[:16].replace("T", " ") if stamp else ""


def _seconds(value: Any) -> str:
    return f"{float(value):,.0f}" if value is not None else ""


def _gigabytes(n: Any) -> str:
    return f"{int(n) / 1e9:.2f} GB" if n is not None else ""


def _code(git: Any) -> str:
    if not isinstance(git, dict) or not git.get("commit"):
        return "not recorded"
    return str(git["commit"])[:7] + (" + changes" if git.get("dirty") else "")


def _outcome(run: dict) -> str:
    outcome = str(run.get("outcome") or "")
    code = run.get("exit_code")
    return f"{outcome} ({code})" if code not in (None, 0) else outcome


def _units_per_run(timing: dict) -> dict[int, int]:
    """How many units spent time (search or seed runs) in each run of the driver."""
    counts: dict[int, int] = {}
    for unit in timing.values():
        for entry in unit.get("runs", []) if isinstance(unit, dict) else []:
            if float(entry.get("search_seconds") or 0.0) + float(entry.get("seed_seconds") or 0.0) > 0:
                counts[int(entry["run"])] = counts.get(int(entry["run"]), 0) + 1
    return counts


def run_cost_table(exp: Experiment) -> Table | None:
    """One row per run of the driver and one for the whole experiment; ``None`` without runs."""
    m = exp.manifest if isinstance(exp.manifest, dict) else {}
    runs = [r for r in m.get("runs") or [] if isinstance(r, dict)]
    if not runs:
        return None
    timing = m.get("timing") or {}
    units = _units_per_run(timing)
    records: list[dict] = []

    def add(row: str, values: dict[str, str]) -> None:
        records.extend({"block": "", "row": row, "column": c, "value": values.get(c, "")} for c in COLUMNS)

    for run in runs:
        add(f"run {run.get('run')}", {
            "started": _time(run.get("started")), "finished": _time(run.get("finished")) or "(not ended)",
            "outcome": _outcome(run), "wall (s)": _seconds(run.get("wall_seconds")),
            "units worked on": str(units.get(int(run.get("run") or 0), 0)), "code": _code(run.get("git"))})
    use, disk = m.get("slot_use") or {}, m.get("disk") or {}
    ratio = use.get("ratio")
    whole = {"started": _time(runs[0].get("started")),
             "finished": _time(m.get("finished")) or "(not all units finished)",
             "outcome": "complete" if m.get("finished") else "incomplete",
             "wall (s)": _seconds(sum(float(r.get("wall_seconds") or 0.0) for r in runs)),
             "units worked on": str(len([u for u in timing.values() if isinstance(u, dict)])),
             "code": _code(m.get("git")) + " (created)",
             "trial seconds": _seconds(use.get("trial_seconds")) if use else "",
             "slots": str(use.get("slots", "")) if use else "",
             "wall / packed": (f"{ratio:.2f}" + (f" (target <= {use['target']:g})" if use.get("target") else "")
                               if ratio else ""),
             "disk peak": _gigabytes(disk.get("peak_bytes")) if disk else "",
             "disk final": _gigabytes(disk.get("final_bytes")) if disk else ""}
    add(WHOLE, whole)
    freed = disk.get("freed_bytes")
    notes = []
    if not use:
        notes.append("slot use not recorded: the manifest gets it when a run of the driver ends")
    if freed:
        notes.append(f"checkpoints freed during the runs: {_gigabytes(freed)} "
                     f"(--keep-checkpoints {disk.get('keep_checkpoints')})")
    data = pd.DataFrame(records, columns=["block", "row", "column", "value"])
    caption = ("What the experiment cost, per run of the driver (an experiment resumed across sessions "
               "has one run per session) and in all. wall / packed: the wall time over the trials' own "
               "seconds divided by the slots (1.0: no slot ever idle). Times to the minute, in the driver's "
               "time zone as recorded in manifest.json; `code`: the "
               "commit each run ran, `+ changes` when the working tree differed from it.")
    return Table(name="run_cost", caption=caption, data=data, rows=list(dict.fromkeys(data["row"])),
                 columns=COLUMNS, row_header="run", notes=notes)


__all__ = ["run_cost_table"]
