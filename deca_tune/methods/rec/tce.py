"""``tce``: Truncated BCE (Wang et al. WSDM 2021), a loss-based re-weighting baseline.

Default (``tce_form: "published"``, ``loss_scale: "deca"``): the authors' selection and schedule
(WenjieWWJ/DenoisingRec, ``T_CE/loss.py`` and ``T_CE/main.py``) inside the base BCE of every rec
method (:mod:`deca_tune.losses.bce`). Per mini-batch the ``drop_rate(step)`` fraction of the
*whole batch* (its positives and their sampled negatives together) with the largest
label-masked loss is dropped (only positives, unless more than all positives are to be dropped);
the kept samples are reduced as ``normal`` reduces a batch: mean over the kept positives + mean
over the kept negatives (the sum on the authors' CDAE). At ``drop_rate`` 0 nothing is ever
dropped and ``tce`` trains exactly as ``normal`` (``tests/test_nesting.py``). The rate is their
``drop_rate_schedule``: linear from 0 at step 0 to ``drop_rate**exponent`` at step
``num_gradual - 1``, then ``drop_rate``. Defaults are their argparse defaults: ``drop_rate``
0.2, ``num_gradual`` 30000, ``exponent`` 1.

``loss_scale: "denoisingrec"``: the authors' single mean over the kept samples of the mixed
batch (the default before issue 17): half of ``normal``'s loss at rate 0 with one negative per
positive, so under Adam its ``l2`` acts as ``normal``'s ``2 * l2``.

``tce_form: "positives"`` is this project's earlier variant, kept to reproduce earlier runs: the
fraction is of the positives only, the loss is mean over kept positives + mean over negatives
(``normal``'s scaling), the rate is ``drop_rate * min(step / num_gradual, 1)``; ``exponent``
must stay 1 and ``loss_scale`` ``"deca"``. See :mod:`deca_tune.losses.truncated_bce` and
``docs/denoising-methods.md``.
"""
from __future__ import annotations

from deca_tune.losses.truncated_bce import (check_exponent, drop_rate_schedule, linear_drop_rate,
                                            truncated_bce, truncated_bce_positives)
from deca_tune.methods.registry import REC_METHODS
from deca_tune.methods.rec.base import RecMethod, bce_scale, check_loss_scale
from deca_tune.methods.rec.normal import pair_logits

TCE_FORMS = ("published", "positives")


@REC_METHODS.register("tce")
class TCE(RecMethod):
    """BCE with the largest-loss positives of every batch dropped, at a growing rate."""

    defaults = {"drop_rate": 0.2, "num_gradual": 30000, "exponent": 1.0, "tce_form": "published",
                "loss_scale": "deca"}

    @classmethod
    def check_spec(cls, spec) -> None:
        check_loss_scale(spec)

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.form = str(self.spec["tce_form"])
        if self.form not in TCE_FORMS:
            raise ValueError(f"spec key 'tce_form' must be one of {TCE_FORMS}, got {self.spec['tce_form']!r}")
        self.scale = bce_scale(self)
        self.drop_rate = float(self.spec["drop_rate"])
        self.num_gradual = int(self.spec["num_gradual"])
        self.exponent = float(self.spec["exponent"])
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"spec key 'drop_rate' must lie in [0, 1), got {self.spec['drop_rate']!r}")
        if self.num_gradual < 1:
            raise ValueError(f"spec key 'num_gradual' must be >= 1, got {self.spec['num_gradual']!r}")
        try:
            check_exponent(self.exponent)
        except ValueError as err:
            raise ValueError(f"spec key 'exponent': {err}") from None
        if self.form == "positives" and self.exponent != 1.0:
            raise ValueError("spec key 'exponent' is only used by tce_form 'published'; "
                             f"tce_form 'positives' needs exponent 1, got {self.spec['exponent']!r}")
        if self.form == "positives" and self.spec["loss_scale"] != "deca":
            raise ValueError("spec key 'loss_scale': tce_form 'positives' has its own scaling (mean over "
                             f"kept positives + mean over negatives); use loss_scale deca, got "
                             f"{self.spec['loss_scale']!r}")

    def rate_at(self, step: int) -> float:
        if self.form == "positives":
            return linear_drop_rate(step, self.drop_rate, self.num_gradual)
        return drop_rate_schedule(step, self.drop_rate, self.num_gradual, self.exponent)

    def batch_loss(self, users, pos, neg, step, neg_users=None):
        pos_logits, neg_logits = pair_logits(self.f, users, pos, neg, neg_users)
        rate = self.rate_at(step)
        if self.form == "positives":
            loss, _ = truncated_bce_positives(pos_logits, neg_logits, rate)
        else:
            loss, _ = truncated_bce(pos_logits, neg_logits, rate, scale=self.scale)
        return loss, {"tce": loss.detach(), "tce/drop_rate": rate}
