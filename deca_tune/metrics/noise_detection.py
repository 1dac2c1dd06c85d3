"""Noise detection: how well a method's per-interaction score separates clean from noisy
training positives (paper section 5.4 plots the mean; we also measure the separation).

- :func:`noise_detection_auc`: ROC-AUC of the score for clean (label 1) vs noisy (label 0),
  computed from ranks (Mann-Whitney U), ties counted as one half.
- :func:`precision_at_noise_rate`: flag as noisy the ``n_noisy`` lowest-scored positives;
  the fraction of them that really are noisy (expected value under random tie breaking).
- :func:`training_positive_scores`: a DataFrame ``user, item, rating, noisy, probability, score``
  for every training positive of a trained method (``probability`` = P(real positive): Eq. 25 for
  DeCA, f for DeCA(p), else the sigmoid of the target model; ``score`` = its logit, which the AUC
  uses because it does not saturate, see :func:`clean_score`).
- :func:`clean_labels`: the clean/noisy truth per row: the planted truth on ``synthetic``, else
  rating >= 4 clean and rating <= 2 noisy (rating 3 left out), as for ML-100K.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

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


@torch.no_grad()
def clean_score(method: Any, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """The logit of P(real positive) for observed pairs: ``method.clean_logit`` if it has one,
    else the logit of ``method.clean_probability``, else the target model's logit.

    Ranking by the logit is ranking by the probability, but it does not saturate: in float32 a
    well-fitted model gives probability exactly 1.0 to many training positives, and those ties
    would pull every AUC towards 0.5.
    """
    logit_fn = getattr(method, "clean_logit", None)
    if logit_fn is not None:
        return logit_fn(users, items)
    p = method.clean_probability(users, items)
    if p is None:
        return method.f(users, items)
    p = p.double()
    return torch.log(p) - torch.log1p(-p)


@torch.no_grad()
def training_positive_scores(method: Any, split: RecSplit, batch_size: int = 65536,
                             device: torch.device | str | None = None) -> pd.DataFrame:
    """``user, item, rating, noisy, probability`` for every training positive of ``method``.

    ``noisy`` is the planted truth (``synthetic``) or missing; ``rating`` is NaN where unknown.
    """
    if device is None:
        device = next(method.parameters()).device
    was_training = method.training
    method.eval()
    users = torch.as_tensor(split.train[:, 0], device=device)
    items = torch.as_tensor(split.train[:, 1], device=device)
    out = []
    for lo in range(0, len(users), batch_size):
        out.append(clean_score(method, users[lo:lo + batch_size], items[lo:lo + batch_size]).double().cpu())
    method.train(was_training)
    score = torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)
    prob = torch.sigmoid(score).numpy()
    n = len(split.train)
    rating = (np.asarray(split.train_rating, dtype=np.float64) if split.train_rating is not None
              else np.full(n, np.nan))
    noisy = (pd.array(np.asarray(split.train_noisy, dtype=bool), dtype="boolean")
             if split.train_noisy is not None else pd.array([pd.NA] * n, dtype="boolean"))
    return pd.DataFrame({"user": split.train[:, 0], "item": split.train[:, 1], "rating": rating,
                         "noisy": noisy, "probability": prob, "score": score.numpy()})


def noise_detection_scores(method: Any, split: RecSplit) -> dict[str, float]:
    """``noise_auc`` and ``noise_precision`` of ``method`` on ``split``'s training positives."""
    df = training_positive_scores(method, split)
    labels = clean_labels(split)
    known = labels >= 0
    scores, clean = df["score"].to_numpy()[known], labels[known] == 1
    return {"noise_auc": noise_detection_auc(scores, clean),
            "noise_precision": precision_at_noise_rate(scores, clean),
            "noise_n_clean": int(clean.sum()), "noise_n_noisy": int((~clean).sum())}
