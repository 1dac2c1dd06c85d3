"""Units in flight at once (``--overlap``, issue 22 part 8): the next unit's trials take the slots
one unit's tail leaves idle; Ctrl-C stops every unit's Tuner resumably; ``--resume`` completes."""
from __future__ import annotations

import json
import re

import pandas as pd

from tests.test_search import FAKE, TINY, InterruptAfter, results, run

UNITS = ["synthetic__gmf__normal", "synthetic__gmf__deca", "synthetic__gmf__deca_p"]


def _events(log: str) -> list[tuple[str, str]]:
    """(unit, event) of each trial line of search.log, in order: the start lines name the unit
    (units lead their lines when several are in flight), the end lines are matched by trial id."""
    unit_of: dict[str, str] = {}
    found = []
    for line in log.splitlines():
        m = re.search(r"\] (\w+) (started|finished|stopped by ASHA)", line)
        if not m:
            continue
        if m.group(2) == "started":
            unit_of[m.group(1)] = line.split(" started: ", 1)[1].split(":", 1)[0]
            found.append((unit_of[m.group(1)], "started"))
        else:
            found.append((unit_of.get(m.group(1), ""), "ended"))
    return found


def test_units_overlap_and_every_unit_completes(ray_session, tmp_path, capsys):
    # a unit's tails (its 3rd trial, its 3rd seed run: one slot free) last ~4 s, longer than the
    # start of the next unit's first actor even on a loaded machine
    argv = [*TINY, *FAKE, "--methods", "normal,deca", "--num-samples", "3", "--max-epochs", "3",
            "--scheduler", "fifo", "--max-concurrent", "2", "--set", "sleep=1.3", "--seeds", "0", "1", "2",
            "--overlap", "2", "--verbose", "1", "--storage-path", str(tmp_path), "--name", "ov"]
    code, out = run(argv, capsys)
    assert code == 0, out
    exp = tmp_path / "ov"
    log = (exp / "search.log").read_text()
    events = _events(log)
    assert {unit for unit, kind in events if kind == "started"} == set(UNITS[:2])
    # the second unit started before the first one's last trial (search or seed run) ended
    first_b = events.index((UNITS[1], "started"))
    last_a = max(i for i, event in enumerate(events) if event == (UNITS[0], "ended"))
    assert first_b < last_a, events
    summary = pd.read_csv(exp / "summary/summary.csv")
    assert list(summary["method"]) == ["normal", "deca"]  # plan order, whatever finished first
    runs = pd.read_csv(exp / "summary/seed_runs.csv")
    assert len(runs) == 6 and set(runs["status"]) == {"completed"}
    manifest = json.loads((exp / "manifest.json").read_text())
    assert manifest["runs"][-1]["overlap"] == 2 and manifest["config"]["overlap"] == 2
    assert "2 unit(s) at a time" in out


def test_ctrl_c_with_units_in_flight_resumes_every_unit(ray_session, tmp_path, capsys):
    InterruptAfter.fired = False
    argv = [*TINY, *FAKE, "--methods", "normal,deca,deca_p", "--num-samples", "3", "--max-epochs", "3",
            "--scheduler", "fifo", "--max-concurrent", "2", "--set", "sleep=0.3", "--seeds", "0",
            "--overlap", "2", "--storage-path", str(tmp_path), "--name", "int"]
    code, out = run(argv, capsys, callbacks=[InterruptAfter(2)])
    assert code == 130 and "--resume" in out, out
    exp = tmp_path / "int"
    manifest = json.loads((exp / "manifest.json").read_text())
    assert manifest["runs"][-1]["outcome"] == "interrupted"
    assert not (exp / "search" / UNITS[2]).exists(), "no unit starts after Ctrl-C"
    finished = {d: len(results(d)) for u in UNITS[:2] if (exp / "search" / u).exists()
                for d in (exp / "search" / u).iterdir()
                if (d / "result.json").exists() and results(d) and results(d)[-1].get("trainer_finished")}
    assert finished, "trials finished before Ctrl-C"

    code, out = run(["--resume", "--name", "int", "--storage-path", str(tmp_path)], capsys)
    assert code == 0, out
    trials = pd.read_csv(exp / "summary/search_trials.csv")
    assert len(trials) == 9 and set(trials["status"]) == {"completed"}
    assert len(pd.read_csv(exp / "summary/seed_runs.csv")) == 3
    for trial_dir, n in finished.items():
        assert len(results(trial_dir)) == n, "a finished trial must not run again"
