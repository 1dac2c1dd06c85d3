"""``wbpr``: weighted BPR (Gantner et al., "Personalized Ranking for Non-Uniformly Sampled
Items", JMLR W&CP 18, 2012), a re-sampling baseline.

Negatives are drawn with probability proportional to item popularity (the item of a uniformly
random training interaction, rejecting the user's own positives: sampler ``popularity``), so
popular but un-interacted items, which the user has likely seen and skipped, are treated as the
real negatives. The loss is BPR as in the original, ``-log sigmoid(s_ui - s_uj)`` averaged over
the (positive, negative) pairs, not BCE; L2 comes from the loop as for every method.
"""
from __future__ import annotations

from deca_tune.losses.bpr import bpr_loss
from deca_tune.methods import REC_METHODS
from deca_tune.methods.base import RecMethod
from deca_tune.methods.normal import pair_logits


@REC_METHODS.register("wbpr")
class WBPR(RecMethod):
    """BPR with popularity-proportional negative sampling."""

    sampler = "popularity"

    def batch_loss(self, users, pos, neg, step):
        pos_logits, neg_logits = pair_logits(self.f, users, pos, neg)
        loss = bpr_loss(pos_logits, neg_logits)
        return loss, {"bpr": float(loss.detach())}
