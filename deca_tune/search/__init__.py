"""Hyperparameter search with Ray Tune: ``python -m deca_tune.search``.

- ``config.py``: the command line, ``--config`` files and ``--resume`` -> ``ExperimentConfig``;
- ``plan.py``: one unit per (data set, backbone, method) with its spec and search space;
- ``run.py``: Ray: cluster, resources, one ``tune.Tuner`` per unit (Optuna + ASHA), seed reruns
  (with ``trainables/``, the only code that imports Ray);
- ``checks.py``: what is checked before Ray starts (specs and searched ranges, paths, data);
- ``lock.py``: the experiment lock (one driver per experiment);
- ``console.py``: the console (trial events, progress, ETA) and ``search.log``;
- ``summary.py``: the CSV tables of an experiment folder; ``manifest.py``: its ``manifest.json``;
- ``signals.py``: SIGTERM handled like Ctrl-C (exit status 143 instead of 130);
- ``cli.py``: the driver that runs them in that order (``main``) and its exit status.
"""
from __future__ import annotations

from typing import Any, Sequence


def main(argv: Sequence[str] | None = None, callbacks: Sequence[Any] = ()) -> int:
    """``python -m deca_tune.search`` (see :func:`deca_tune.search.cli.main`)."""
    from deca_tune.search.cli import main as run

    return run(argv, callbacks)
