"""Per-example clean scores of a trained recommendation method (paper section 5.4).

``probability`` = P(real positive) of an observed pair: Eq. 25 for DeCA, f for DeCA(p), else the
sigmoid of the target model; ``score`` = its logit, which noise-detection AUCs use because it
does not saturate (see :func:`clean_score`). The measures are in
:mod:`deca_tune.metrics.noise_detection`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from deca_tune.data.interactions import RecSplit
from deca_tune.metrics.noise_detection import clean_labels, noise_detection_auc, precision_at_noise_rate


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
