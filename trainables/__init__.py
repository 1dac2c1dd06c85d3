"""The thin Ray Tune layer: one function trainable for every task family (:mod:`trainables.trial`)."""
from __future__ import annotations

from trainables.trial import SCORE, TRIAL_ERROR, trainable

__all__ = ["SCORE", "TRIAL_ERROR", "trainable"]
