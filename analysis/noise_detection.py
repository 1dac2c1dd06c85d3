"""Noise-detection report helpers (beyond the paper): how well a per-example "is clean" score
finds the noisy labels, as ROC-AUC and precision at the true noise rate.

The scores themselves come from the methods (DeCA Eq. 25, DeCA(p) f, T-CE loss rank, ITLM
loss, MW-Net weight); the measures are :mod:`deca_tune.metrics.noise_detection`'s (not
duplicated here). Two sources are read:

- seed-run columns whose name ends in ``noise_auc`` / ``noise_precision`` (a trainer or
  trainable that reports them per run), aggregated as mean ± std over seeds;
- score exports: CSV files with a score column (``probability``, ``clean_score`` or ``score``;
  higher = more likely clean) and the truth, either a boolean ``noisy`` column (planted noise
  on ``synthetic``, the injected mask for images) or a ``rating`` column (ML-100K rule:
  rating >= 4 clean, rating <= 2 noisy, 3 left out).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from deca_tune.metrics.noise_detection import score_export
from analysis.experiment import GROUP_KEYS, Experiment
from analysis.tables import _ORDER as METHOD_ORDER
from analysis.tables import Table, _block_table, _missing_notes, aggregate, dataset_name, \
    mark_best, method_name

def export_table(paths: Iterable[str | Path]) -> Table | None:
    """One row per score export file (per ``method`` inside it when it has that column)."""
    records = []
    for path in paths:
        path = Path(path)
        frame = pd.read_csv(path)
        parts = frame.groupby("method") if "method" in frame and frame["method"].nunique() > 1 \
            else [(None, frame)]
        for method, sub in parts:
            label = path.stem + (f" / {method_name(str(method))}" if method is not None else "")
            try:
                res = score_export(sub, str(path))
            except ValueError:
                continue  # an export without truth (e.g. ratings all 3) has nothing to score
            for col, key, fmt in (("ROC-AUC", "noise_auc", "{:.4f}"),
                                  ("Precision at noise rate", "noise_precision", "{:.4f}"),
                                  ("Noise rate", "noise_rate", "{:.3f}"),
                                  ("# clean", "n_clean", "{:,}"), ("# noisy", "n_noisy", "{:,}")):
                value = res[key]
                records.append({"block": "", "row": label, "column": col, "source": str(path),
                                "value": fmt.format(value) if np.isfinite(value) else "n/a"})
    if not records:
        return None
    data = pd.DataFrame(records)
    return Table(name="noise_detection_exports",
                 caption="Noise detection from score exports: ROC-AUC of the clean score "
                         "(clean above noisy) and precision of flagging the lowest-scored "
                         "n_noisy examples as noise.",
                 data=data, rows=list(dict.fromkeys(data["row"])),
                 columns=["ROC-AUC", "Precision at noise rate", "Noise rate", "# clean", "# noisy"],
                 row_header="Export")


def _row_label(rec: pd.Series) -> str:
    rate = rec.get("noise_rate")
    suffix = f" (noise {float(rate):.0%})" if rate is not None and pd.notna(rate) else ""
    return method_name(str(rec["method"])) + suffix


def run_table(exp: Experiment) -> list[Table]:
    """Per data set: mean ± std over seeds of the noise-detection columns of the seed runs."""
    runs = exp.seed_runs
    cols = [c for c in runs.columns if isinstance(c, str)
            and (c.endswith("noise_auc") or c.endswith("noise_precision"))]
    if runs.empty or not cols:
        return []
    tables = []
    columns = [(("ROC-AUC" if c.endswith("noise_auc") else "Precision at noise rate")
                + ("" if "/" not in c else f" ({c.rsplit('/', 1)[0]})"), c) for c in cols]
    keys = list(GROUP_KEYS) + [k for k in ("noise_rate",) if k in runs]
    have = runs.dropna(subset=cols, how="all")[keys].drop_duplicates()
    agg = aggregate(exp, cols, keys=keys, groups=have)
    for dataset in sorted(agg["dataset"].dropna().unique()):
        sub = agg[agg["dataset"] == dataset]
        table = _block_table(f"noise_detection_{dataset}",
                             f"{dataset_name(dataset)}: finding the noisy training labels with each "
                             "method's clean score, mean ± std over seeds. Bold: best per column.",
                             sub, columns, _row_label, [method_name(m) for m in METHOD_ORDER], digits=3)
        table.data = mark_best(table.data).assign(star=False)
        table.notes += _missing_notes(table.data, lambda r: f"{r['block']} / {r['row']}")
        tables.append(table)
    return tables
