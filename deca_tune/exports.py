"""Per-example exports from the trained seed runs of an experiment (loads checkpoints, no Ray):
the files the report's Fig. 6 and noise-detection tables read.

For every seed-run trial under ``<experiment>/seeds/<dataset>__<backbone>__<method>/`` the
trainer is rebuilt from its checkpoint (best epoch's weights) and:

- recommendation: the interpretability export (paper section 5.4): for every training positive
  ``user, item, rating, noisy, probability`` where ``probability`` is the method's
  P(real positive) (Eq. 25 for DeCA, f for DeCA(p), the sigmoid of f otherwise) --
  ``exports/<unit>__seed<k>_interpretability.csv``;
- images: the method's clean score of every training image with the noise truth (empty where
  labels are given and the clean label is unknown; no AUC without any) --
  ``exports/<unit>__seed<k>_clean_scores.csv``;
- ``exports/noise_detection.csv``: one row per run with ROC-AUC and precision at the noise rate
  (measures from :mod:`deca_tune.metrics.noise_detection`).

The report reads these files (Fig. 6 and the noise-detection table).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from deca_tune.metrics.noise_detection import score_export
from deca_tune.training.checkpoints import find_checkpoint, load_state, load_trainer

EXPORT_DIR = "exports"
NOISE_FILE = "noise_detection.csv"


def seed_trials(root: str | Path) -> list[tuple[dict[str, Any], Path]]:
    """(spec, trial folder) of every seed-run trial with a checkpoint."""
    out = []
    seeds = Path(root) / "seeds"
    if not seeds.is_dir():
        return out
    for unit in sorted(p for p in seeds.iterdir() if p.is_dir()):
        for trial in sorted(p for p in unit.iterdir() if p.is_dir()):
            try:
                state, _ = load_state(find_checkpoint(trial))
            except (FileNotFoundError, ValueError):
                continue  # a trial that never reached its first checkpoint
            out.append((state["spec"], trial))
    return out


def _rec_scores(trainer: Any) -> pd.DataFrame:
    from deca_tune.methods.scores import training_positive_scores

    return training_positive_scores(trainer.method, trainer.split)


def _image_scores(trainer: Any) -> pd.DataFrame:
    scores = trainer.train_clean_scores().double().numpy()
    split = trainer.split
    noisy = pd.array(split.noisy_mask.numpy().astype(bool), dtype="boolean")
    noisy[(split.train_y_true < 0).numpy()] = pd.NA  # labels given, clean label unknown: no truth
    return pd.DataFrame({"index": np.arange(len(scores)), "label": split.train_y_noisy.numpy(),
                         "noisy": noisy, "clean_score": scores})


def export_scores(root: str | Path, data_root: str | None = None,
                  log: Callable[[str], Any] = print) -> pd.DataFrame:
    """Write the exports of every seed run of ``root``; returns the noise-detection rows."""
    root = Path(root)
    out_dir = root / EXPORT_DIR
    out_dir.mkdir(exist_ok=True)
    rows = []
    for spec, trial in seed_trials(root):
        task = spec.get("task", "rec")
        keys = {"dataset": spec["dataset"], "backbone": spec["backbone"], "method": spec["method"],
                "seed": int(spec["seed"])}
        # the unit's folder name: it also names a varied spec key (``vary:``, e.g. Table 6's h model)
        unit = f"{trial.parent.name}__seed{keys['seed']}"
        try:
            trainer = load_trainer(trial, data_root=data_root)
            frame = _rec_scores(trainer) if task == "rec" else _image_scores(trainer)
        except Exception as exc:  # noqa: BLE001 - one broken run must not stop the others
            log(f"  {unit}: cannot export ({type(exc).__name__}: {exc})")
            rows.append({**keys, "task": task, "error": f"{type(exc).__name__}: {exc}"})
            continue
        frame.insert(0, "dataset", keys["dataset"])
        frame.insert(1, "backbone", keys["backbone"])
        frame.insert(2, "method", keys["method"])
        frame.insert(3, "seed", keys["seed"])
        name = "interpretability" if task == "rec" else "clean_scores"
        path = out_dir / f"{unit}_{name}.csv"
        frame.to_csv(path, index=False)
        try:
            res = score_export(frame, str(path))
        except ValueError as exc:  # no truth (e.g. a data set without ratings or planted noise)
            res = {"error": str(exc)}
        rows.append({**keys, "task": task, **res, "file": path.name})
        log(f"  {unit}: {path.name} " + (f"AUC {res['noise_auc']:.4f}" if "noise_auc" in res else res.get("error", "")))
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / NOISE_FILE, index=False)
    return table
