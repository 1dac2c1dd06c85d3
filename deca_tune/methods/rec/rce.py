"""``rce``: Reweighted BCE (Wang et al. WSDM 2021, the same paper and repository as T-CE).

As in the authors' code (WenjieWWJ/DenoisingRec, ``R_CE/loss.py``; their ``--alpha`` is our
``beta``, default 0.2 as in their ``R_CE/main.py``; their released runs use 0.2-0.3): the BCE of
every sample weighted by its detached prediction to the power ``beta`` (positives
``sigmoid(z)^beta``, negatives ``(1 - sigmoid(z))^beta``), inside the base BCE of every rec
method (:mod:`deca_tune.losses.bce`; ``loss_scale: "denoisingrec"`` is their single mean over
the mixed batch). At ``beta`` 0 it trains exactly as ``normal`` (``tests/test_nesting.py``).
See :mod:`deca_tune.losses.reweighted_bce` and ``docs/denoising-methods.md``.
"""
from __future__ import annotations

from deca_tune.losses.reweighted_bce import check_beta, reweighted_bce
from deca_tune.methods.registry import REC_METHODS
from deca_tune.methods.rec.base import RecMethod, bce_scale, check_loss_scale
from deca_tune.methods.rec.normal import pair_logits
from deca_tune.tasks.base import SpecError


@REC_METHODS.register("rce")
class RCE(RecMethod):
    """BCE with every sample weighted by its detached predicted probability of its label ^ beta."""

    defaults = {"beta": 0.2, "loss_scale": "deca"}

    @classmethod
    def check_spec(cls, spec) -> None:
        check_loss_scale(spec)
        try:
            check_beta(float(spec.get("beta", 0.2)))
        except (TypeError, ValueError) as err:
            raise SpecError("beta", str(err)) from None

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.scale = bce_scale(self)
        self.beta = float(self.spec["beta"])
        try:
            check_beta(self.beta)
        except ValueError as err:
            raise ValueError(f"spec key 'beta': {err}") from None

    def batch_loss(self, users, pos, neg, step, neg_users=None):
        pos_logits, neg_logits = pair_logits(self.f, users, pos, neg, neg_users)
        loss = reweighted_bce(pos_logits, neg_logits, self.beta, scale=self.scale)
        return loss, {"rce": loss.detach()}
