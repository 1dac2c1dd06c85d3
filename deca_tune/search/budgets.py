"""The default budget of a search unit and its first trial, taken from the DeCA authors'
configurations (``deca_tune.bench.authors.AUTHORS_CONFIG``, their ``configs.py``).

**Unit: epochs, per (data set, backbone).** One ``--max-epochs`` for every backbone is not an
equal budget: a CDAE epoch is one pass over the users (on ML-100K one optimiser step of 2,048
user rows), a GMF epoch ~40 steps of 2,048 pairs, and the authors train CDAE 200-500 epochs and
GMF 20. Optimiser steps or training examples are no fairer: a CDAE step sees whole user rows,
a LightGCN step propagates the whole graph, so neither unit costs or teaches the same across
backbones. The authors' per-backbone epoch counts are what brings each backbone into the regime
they report (the fidelity bench reproduces it that way), so the budget of a unit is
:func:`epoch_budget`: the **largest** number of epochs the authors give any of their methods
(normal, DeCA, DeCA(p)) on that data set and backbone -- the same for every method of the
backbone (equal budget), and no method gets fewer epochs than its authors gave it. ASHA's rungs
are in the same unit (``time_attr="epoch"``): the grace period is :func:`grace_period` (a tenth
of the budget) and ``max_t`` the budget. ``--max-epochs`` / ``--grace-period`` override both
for every unit.

Data sets without an authors' configuration use the authors' data set in :data:`AUTHORS_DATASET`
(our default-protocol copies of theirs) or :data:`FALLBACK_EPOCHS`; so do backbones they did not
run (``mf``, ``cdae-pairwise``) and the image family.

**First trial.** :func:`authors_start` gives the authors' hyperparameters of the unit: ``lr``,
their lambda as ``l2`` (in the backbone's own L2 form: ``search_spaces/rec_cdae.yaml``), and for
DeCA / DeCA(p) and their Table 5 ablations ``C1`` (their ``C_1``, DP), ``C0`` (their ``C_2``,
DN) and ``alpha``; baselines the authors did not configure (T-CE, WBPR, the ensemble, R-CE)
start from the ``normal`` cell's lambda. The plan makes it Optuna's first trial, so a unit's
first trial trains the fidelity bench's cell (its hyperparameters and at least its epochs;
the search then reports the best epoch on the selection split, the fidelity cell the last).
One exception: DeCA / DeCA(p) on the authors' CDAE search with ``loss_reduction: recipe`` (the
summed loss of ``normal`` there, so that the L2 space is the same), while the fidelity cell runs
the authors' mean (``loss_reduction: authors``); their first trial has the cell's
hyperparameters, not its loss scale.
"""
from __future__ import annotations

import math
from typing import Any

from deca_tune.bench.authors import AUTHORS_CONFIG, AUTHORS_DEFAULTS

#: our data set -> the authors' data set whose configuration it takes
AUTHORS_DATASET: dict[str, str] = {
    "ml-100k-paper": "ml-100k", "ml-100k": "ml-100k",
    "modcloth-paper": "modcloth", "modcloth": "modcloth",
    "adressa": "adressa", "electronics": "electronics",
}
#: the authors' methods; every other method takes their ``normal`` cell
AUTHORS_METHODS = ("normal", "deca", "deca_p")
#: Table 5 ablations -> the authors' configuration they take (the fidelity bench's mapping)
ABLATIONS = {"deca-dp": "deca", "deca-dn": "deca", "deca_p-dp": "deca_p", "deca_p-dn": "deca_p"}
#: epochs of a unit the authors' configurations do not cover (the search's earlier default)
FALLBACK_EPOCHS = 10
#: ASHA's grace period as a fraction of the unit's epoch budget
GRACE_FRACTION = 0.1


def _cells(task: str, dataset: str, backbone: str) -> dict[str, dict[str, Any]]:
    """The authors' configurations of (data set, backbone), by method; empty when none."""
    if task != "rec":
        return {}
    theirs = AUTHORS_DATASET.get(dataset)
    return {m: AUTHORS_CONFIG[(theirs, backbone, m)] for m in AUTHORS_METHODS
            if (theirs, backbone, m) in AUTHORS_CONFIG}


def epoch_budget(task: str, dataset: str, backbone: str) -> int:
    """Epochs per trial of every method of (data set, backbone): the most the authors give any
    of their methods there, else :data:`FALLBACK_EPOCHS`."""
    cells = _cells(task, dataset, backbone)
    return max((int(c["epochs"]) for c in cells.values()), default=FALLBACK_EPOCHS)


def grace_period(budget: int) -> int:
    """ASHA's grace period for an epoch budget (a tenth of it, at least 1)."""
    return max(1, math.ceil(GRACE_FRACTION * budget))


def authors_start(task: str, dataset: str, backbone: str, method: str) -> dict[str, Any]:
    """The authors' hyperparameters of the unit (empty when they did not configure it)."""
    cells = _cells(task, dataset, backbone)
    base = ABLATIONS.get(method, method)
    cfg = cells.get(base if base in AUTHORS_METHODS else "normal")
    if cfg is None:
        return {}
    start: dict[str, Any] = {"lr": float(AUTHORS_DEFAULTS["lr"]), "l2": float(cfg["lambda0"])}
    if base in ("deca", "deca_p"):
        start.update(C1=float(cfg["C_1"]), C0=float(cfg["C_2"]), alpha=float(cfg["alpha"]))
    return start


def authors_cell(task: str, dataset: str, backbone: str, method: str) -> str:
    """Which configuration :func:`authors_start` took, for the plan (``""`` when none)."""
    if not _cells(task, dataset, backbone):
        return ""
    base = ABLATIONS.get(method, method)
    which = base if base in AUTHORS_METHODS else "normal"
    return f"the authors' {AUTHORS_DATASET[dataset]} {backbone} {which} configuration"


__all__ = ["ABLATIONS", "AUTHORS_DATASET", "FALLBACK_EPOCHS", "authors_cell", "authors_start",
           "epoch_budget", "grace_period"]
