"""Fabricated experiment folders (docs/architecture.md layout) for the analysis tests.

Per-seed values are ``mean + offset`` with offsets ``(-d, 0, +d)``, so the true mean and the
sample std (``d``) of every family are known exactly and tests can check the tables' numbers.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SEEDS = (0, 1, 2)
OFFSETS = (-1.0, 0.0, 1.0)


def write_experiment(root: Path, runs: list[dict] | None = None, curves: list[dict] | None = None,
                     trials: list[dict] | None = None, manifest: dict | None = None) -> Path:
    root = Path(root)
    (root / "summary").mkdir(parents=True, exist_ok=True)
    for name, rows in (("seed_runs", runs), ("curves", curves), ("search_trials", trials)):
        if rows is not None:
            pd.DataFrame(rows).to_csv(root / "summary" / f"{name}.csv", index=False)
    if manifest is not None:  # what the search records (deca_tune/search/manifest.py)
        manifest = {"selection_metric": {"rec": "valid/ndcg@20", "image": "valid/accuracy"}, **manifest}
        (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def rec_runs(means: dict[tuple[str, str], dict[str, float]], dataset: str = "ml-100k",
             d: float = 0.002, drop: set = frozenset(), failed: set = frozenset(),
             extra: dict[str, Any] | None = None) -> list[dict]:
    """Seed-run rows; ``means[(backbone, method)] = {metric: mean}``; ``drop``/``failed`` hold
    ``(backbone, method, seed)`` triples left out / written with status ERROR and NaN metrics."""
    rows = []
    for (backbone, method), metrics in means.items():
        for seed, off in zip(SEEDS, OFFSETS):
            if (backbone, method, seed) in drop:
                continue
            bad = (backbone, method, seed) in failed
            row = {"dataset": dataset, "backbone": backbone, "method": method, "seed": seed,
                   "task": "rec", "status": "ERROR" if bad else "TERMINATED", "config/lr": 1e-3,
                   **(extra or {})}
            row.update({m: (np.nan if bad else v + off * d) for m, v in metrics.items()})
            rows.append(row)
    return rows


def rec_metrics(r5: float, r20: float, n5: float, n20: float, split: str = "test_clean") -> dict[str, float]:
    return {f"{split}/recall@5": r5, f"{split}/recall@20": r20, f"{split}/ndcg@5": n5,
            f"{split}/ndcg@20": n20}


def curves_for(runs: list[dict], metrics: list[str], epochs: int = 6) -> list[dict]:
    """Per-epoch rows rising towards each run's final value (a different shape per method)."""
    rows = []
    for run in runs:
        if run.get("status") == "ERROR":
            continue
        for epoch in range(1, epochs + 1):
            frac = 1 - np.exp(-epoch / (1 + len(run["method"]) % 3))
            rows.append({k: run[k] for k in ("dataset", "backbone", "method", "seed", "task")}
                        | {"epoch": epoch} | {m: run[m] * frac for m in metrics if m in run}
                        | ({"noise_rate": run["noise_rate"]} if "noise_rate" in run else {}))
    return rows


def deca_trials(dataset: str, backbone: str, method: str, n: int = 24, seed: int = 0,
                params: tuple[str, str] = ("C0", "C1"), metric: str = "valid/ndcg@20") -> list[dict]:
    """Search trials with log-uniform constants; the metric grows with log(C1) (Fig. 5 shape)."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n):
        a, b = 10 ** rng.uniform(0, 3), 10 ** rng.uniform(0, 3)
        rows.append({"trial_id": f"t{t:03d}", "dataset": dataset, "backbone": backbone,
                     "method": method, "status": "TERMINATED", f"config/{params[0]}": a,
                     f"config/{params[1]}": b, "config/lr": 10 ** rng.uniform(-4, -2),
                     metric: 0.03 + 0.01 * np.log10(b) + rng.normal(0, 0.001),
                     "training_iteration": 5})
    rows.append({**rows[-1], "trial_id": "failed", "status": "ERROR", metric: np.nan})
    return rows
