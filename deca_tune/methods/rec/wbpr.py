"""``wbpr``: weighted BPR (Gantner et al., "Personalized Ranking for Non-Uniformly Sampled
Items", JMLR W&CP 18, 2012), a re-sampling baseline.

Negatives are drawn with probability proportional to item popularity (the item of a uniformly
random training interaction, rejecting the user's own positives: sampler ``popularity``), as in
the reference implementation, MyMediaLite's ``WeightedBPRMF.SampleTriple``; so popular but
un-interacted items, which the user has likely seen and skipped, are treated as the real
negatives. The loss is BPR, ``-log sigmoid(s_ui - s_uj)``, not BCE; L2 comes from the loop as for
every method.

``wbpr_form: "published"`` (default) adds the user weight ``w_u`` proportional to ``1 / |I_u^+|``
of the paper's WBPR criterion (not in MyMediaLite's code; see the caveat in the doc): every user
counts the same, however many positives it has (the loop visits each training positive once per
epoch, i.e. users in proportion to ``|I_u^+|``). The weights are
normalised to mean 1 over the training positives, ``w_u = (|D+| / |U+|) / |I_u^+|`` with ``|D+|``
the number of training positives and ``|U+|`` the number of users that have any, and the batch
loss is ``sum_b w_{u_b} * l_b / (B * r)``: an epoch's loss has the unweighted loss's scale, so
``l2`` (lambda) stays comparable with ``normal``/``unweighted``. ``wbpr_form: "unweighted"`` is
MyMediaLite's code as it runs (no user weight: users in proportion to their positives) and this
project's earlier ``wbpr``. See ``docs/denoising-methods.md``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from deca_tune.losses.bpr import bpr_loss
from deca_tune.methods.registry import REC_METHODS
from deca_tune.methods.rec.base import RecMethod
from deca_tune.methods.rec.normal import pair_logits
from deca_tune.tasks.base import check_choice

WBPR_FORMS = ("published", "unweighted")


def wbpr_user_weights(train: np.ndarray, n_users: int) -> np.ndarray:
    """``w_u = (|D+| / |U+|) / |I_u^+|`` for users with training positives, 0 for the others:
    proportional to ``1 / |I_u^+|`` and of mean 1 over the training positives ``train[:, 0]``."""
    counts = np.bincount(np.asarray(train[:, 0], dtype=np.int64), minlength=n_users).astype(np.float64)
    active = counts > 0
    if not active.any():
        raise ValueError("WBPR user weights: the training split has no positives")
    scale = len(train) / active.sum()
    return np.where(active, scale / np.maximum(counts, 1.0), 0.0)


@REC_METHODS.register("wbpr")
class WBPR(RecMethod):
    """BPR with popularity-proportional negative sampling and (by default) user weights."""

    sampler = "popularity"
    defaults = {"wbpr_form": "published"}

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any]) -> None:
        check_choice({**cls.defaults, **spec}, "wbpr_form", WBPR_FORMS)

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.check_spec(self.spec)
        self.form = str(self.spec["wbpr_form"])
        weights = wbpr_user_weights(split.train, split.n_users) if self.form == "published" else None
        # not persistent: derived from the split, so checkpoints keep the earlier layout
        self.register_buffer("user_weights", None if weights is None else
                             torch.as_tensor(weights, dtype=torch.float32), persistent=False)

    def batch_loss(self, users, pos, neg, step):
        pos_logits, neg_logits = pair_logits(self.f, users, pos, neg)
        weights = None if self.user_weights is None else self.user_weights[users]
        loss = bpr_loss(pos_logits, neg_logits, weights)
        return loss, {"bpr": float(loss.detach())}
