"""Noise detection: how well a method's per-interaction score separates clean from noisy
training positives (paper section 5.4 plots the mean; we also measure the separation).

- :func:`noise_detection_auc`: ROC-AUC of the score for clean (label 1) vs noisy (label 0),
  computed from ranks (Mann-Whitney U), ties counted as one half.
- :func:`precision_at_noise_rate`: flag as noisy the ``n_noisy`` lowest-scored positives;
  the fraction of them that really are noisy (expected value under random tie breaking).
- :func:`clean_labels`: the clean/noisy truth per row: the planted truth on ``synthetic``, else
  rating >= 4 clean and rating <= 2 noisy (rating 3 left out), as for ML-100K.
- :func:`score_export`: both measures of a score export (``deca_tune.exports`` writes them: one
  row per training example with a score column and its truth).

Pure numpy / pandas: no models here (a method's clean scores: :mod:`deca_tune.methods.scores`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deca_tune.data.interactions import RecSplit


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mean_rank = ends - (counts - 1) / 2.0
    return mean_rank[inverse.reshape(-1)]


def _check(scores: Any, is_clean: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    c = np.asarray(is_clean).reshape(-1)
    if s.shape != c.shape:
        raise ValueError(f"scores ({s.size}) and is_clean ({c.size}) differ in length")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return s, c.astype(bool)


def noise_detection_auc(scores: Any, is_clean: Any) -> float:
    """ROC-AUC of ``scores`` ranking clean above noisy samples; NaN if one class is empty."""
    s, c = _check(scores, is_clean)
    n_clean, n_noisy = int(c.sum()), int((~c).sum())
    if n_clean == 0 or n_noisy == 0:
        return float("nan")
    ranks = _average_ranks(s)
    u = ranks[c].sum() - n_clean * (n_clean + 1) / 2.0
    return float(u / (n_clean * n_noisy))


def precision_at_noise_rate(scores: Any, is_clean: Any) -> float:
    """Precision of flagging the ``n_noisy`` lowest scores as noise; NaN without noisy samples."""
    s, c = _check(scores, is_clean)
    k = int((~c).sum())
    if k == 0:
        return float("nan")
    threshold = np.sort(s)[k - 1]
    below, tied = s < threshold, s == threshold
    need = k - int(below.sum())
    hits = float((~c[below]).sum()) + need * float((~c[tied]).mean())
    return hits / k


def clean_labels(split: RecSplit, clean_min: float = 4.0, noisy_max: float = 2.0) -> np.ndarray:
    """Per training row: 1 clean, 0 noisy, -1 unknown/left out (planted truth when available)."""
    if split.train_noisy is not None:
        return np.where(np.asarray(split.train_noisy, dtype=bool), 0, 1).astype(np.int8)
    if split.train_rating is None:
        raise ValueError(f"{split.name}: training positives have neither ratings nor planted noise")
    r = np.asarray(split.train_rating, dtype=np.float64)
    return np.where(r >= clean_min, 1, np.where(r <= noisy_max, 0, -1)).astype(np.int8)




SCORE_COLUMNS = ("probability", "clean_score", "score")
CLEAN_MIN_RATING, NOISY_MAX_RATING = 4.0, 2.0


def truth_and_scores(frame: pd.DataFrame, source: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    """(scores, is_clean) of the rows whose truth is known, from an export frame."""
    score_col = next((c for c in SCORE_COLUMNS if c in frame), None)
    if score_col is None:
        raise ValueError(f"{source}: no score column (one of {', '.join(SCORE_COLUMNS)})")
    scores = pd.to_numeric(frame[score_col], errors="coerce").to_numpy(float)
    if "noisy" in frame and frame["noisy"].notna().any():
        noisy = frame["noisy"].map(lambda v: str(v).strip().lower() in ("1", "true", "1.0"),
                                   na_action="ignore")
        known = noisy.notna().to_numpy() & np.isfinite(scores)
        return scores[known], ~noisy[known].astype(bool).to_numpy()
    if "rating" in frame:
        rating = pd.to_numeric(frame["rating"], errors="coerce").to_numpy(float)
        clean, noisy = rating >= CLEAN_MIN_RATING, rating <= NOISY_MAX_RATING
        known = (clean | noisy) & np.isfinite(scores)
        return scores[known], clean[known]
    raise ValueError(f"{source}: no truth column (a boolean 'noisy' or a 'rating')")


def score_export(frame: pd.DataFrame, source: str = "scores") -> dict[str, float]:
    """ROC-AUC and precision at the noise rate of one export (plus the class sizes)."""
    scores, clean = truth_and_scores(frame, source)
    return {"noise_auc": noise_detection_auc(scores, clean),
            "noise_precision": precision_at_noise_rate(scores, clean),
            "n_clean": int(clean.sum()), "n_noisy": int((~clean).sum()),
            "noise_rate": float((~clean).mean()) if len(clean) else float("nan")}
