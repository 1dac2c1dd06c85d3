"""``wbpr``: weighted BPR (Gantner et al., "Personalized Ranking for Non-Uniformly Sampled
Items", JMLR W&CP 18, 2012), a re-sampling baseline.

Default (``wbpr_form: "mymedialite"``): the reference implementation, MyMediaLite's
``WeightedBPRMF`` (``src/MyMediaLite/ItemRecommendation/WeightedBPRMF.cs``: its ``Iterate``
draws ``|D+|`` triples per epoch with the overridden ``SampleTriple``): each training pair
``(u, i)`` is drawn uniformly *with replacement* from the training interactions (an epoch is
``|D+|`` draws, so some pairs appear twice and some not at all), the negative ``j`` is the item
of another uniformly drawn training interaction (probability proportional to popularity),
redrawn while it is one of ``u``'s positives (sampler ``popularity``), and the loss is plain BPR,
``-log sigmoid(s_ui - s_uj)``, averaged over the mini-batch; there is no per-user weight (none in
MyMediaLite's code, nor in Cornac's). So popular but un-interacted items, which the user has
likely seen and skipped, are treated as the real negatives. L2 comes from the loop as for every
method; the updates are mini-batch Adam, not MyMediaLite's per-triple SGD (docs). On the
authors' CDAE (pairs batching: BPR pairs a negative with its positive) the loss is summed over the
batch, as the backbone's recipe sums ``normal``'s, so its unsquared-norm L2 (``l2 * sum_p
||p||_2``) weighs the same against it as against ``normal``'s (before 2026-12-05 it was the mean:
L2 about a batch size too strong there).

Options, kept to reproduce earlier runs (both go through the training positives as a
permutation, each once per epoch, like every other method):

- ``"user_weighted"`` (this project's earlier default, named ``published`` before issue 17; a
  mistake, the weight is not in the reference code): each pair's BPR term is multiplied by
  ``w_u = (|D+| / |U+|) / |I_u^+|`` (mean 1 over the training positives, ``|U+|`` the users with
  any), so every user counts the same however many positives it has; in expectation that is
  LibRec's uniform-user sampling. The batch loss is ``sum_b w_{u_b} l_b / (B r)``.
- ``"unweighted"``: popularity negatives and plain BPR over the permutation (the first ``wbpr``).

WBPR's base loss is BPR, not the BCE of ``normal``, so no setting of it is ``normal``; with
``sampler: uniform`` and ``wbpr_form: "unweighted"`` it is plain BPR-MF on ``normal``'s stream of
batches (``tests/test_nesting.py``). See ``docs/denoising-methods.md``.
"""
from __future__ import annotations

import numpy as np
import torch

from deca_tune.losses.bpr import bpr_loss
from deca_tune.methods.registry import REC_METHODS
from deca_tune.methods.rec.base import RecMethod
from deca_tune.methods.rec.normal import pair_logits
from deca_tune.models.rec.base import recipe_of
from deca_tune.tasks.base import SpecError, check_choice

WBPR_FORMS = ("mymedialite", "user_weighted", "unweighted")


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
    """BPR with pairs drawn with replacement and popularity-proportional negatives (MyMediaLite)."""

    sampler = "popularity"
    defaults = {"wbpr_form": "mymedialite"}

    @classmethod
    def check_spec(cls, spec) -> None:
        form = spec.get("wbpr_form", "mymedialite")
        if form == "published":
            raise SpecError("wbpr_form", "'published' was renamed 'user_weighted' (issue 17: the per-user "
                            "weight is not in the reference code); the default is now 'mymedialite'")
        check_choice({**cls.defaults, **spec}, "wbpr_form", WBPR_FORMS)

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.check_spec(self.spec)
        self.form = str(self.spec["wbpr_form"])
        weights = wbpr_user_weights(split.train, split.n_users) if self.form == "user_weighted" else None
        # not persistent: derived from the split, so checkpoints keep the earlier layout
        self.register_buffer("user_weights", None if weights is None else
                             torch.as_tensor(weights, dtype=torch.float32), persistent=False)

    def epoch_order(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """MyMediaLite: ``n`` pairs uniformly with replacement; the options: a permutation."""
        if self.form == "mymedialite":
            return rng.integers(0, n, size=n)
        return rng.permutation(n)

    def batch_loss(self, users, pos, neg, step):
        pos_logits, neg_logits = pair_logits(self.f, users, pos, neg)
        weights = None if self.user_weights is None else self.user_weights[users]
        loss = bpr_loss(pos_logits, neg_logits, weights, reduction=recipe_of(self.f).reduction)
        return loss, {"bpr": loss.detach()}
