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

from typing import Any, Mapping

from deca_tune.losses.truncated_bce import (drop_rate_schedule, linear_drop_rate,
                                            truncated_bce, truncated_bce_positives)
from deca_tune.methods.registry import REC_METHODS
from deca_tune.methods.rec.base import RecMethod, bce_scale, check_loss_scale
from deca_tune.methods.rec.normal import pair_logits
from deca_tune.tasks.base import SpecError, check_choice, check_range

TCE_FORMS = ("published", "positives")


@REC_METHODS.register("tce")
class TCE(RecMethod):
    """BCE with the largest-loss positives of every batch dropped, at a growing rate."""

    defaults = {"drop_rate": 0.2, "num_gradual": 30000, "exponent": 1.0, "tce_form": "published",
                "loss_scale": "deca"}

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any]) -> None:
        """``drop_rate`` in [0, 1), ``num_gradual`` >= 1, ``exponent`` > 0 (1 for ``positives``),
        ``loss_scale`` (``deca`` for ``positives``, which has its own scaling)."""
        s = {**cls.defaults, **spec}
        check_loss_scale(s)
        check_choice(s, "tce_form", TCE_FORMS)
        check_range(s, "drop_rate", 0, 1, high_open=True)
        check_range(s, "num_gradual", 1, integer=True)
        check_range(s, "exponent", 0, low_open=True)
        if s["tce_form"] == "positives" and float(s["exponent"]) != 1.0:
            raise SpecError("exponent", "is only used by tce_form 'published'; tce_form 'positives' "
                                        f"needs exponent 1, got {s['exponent']!r}")
        if s["tce_form"] == "positives" and s["loss_scale"] != "deca":
            raise SpecError("loss_scale", "tce_form 'positives' has its own scaling (mean over kept "
                                          f"positives + mean over negatives); use deca, got {s['loss_scale']!r}")

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.check_spec(self.spec)
        self.form = str(self.spec["tce_form"])
        self.scale = bce_scale(self)
        self.drop_rate = float(self.spec["drop_rate"])
        self.num_gradual = int(self.spec["num_gradual"])
        self.exponent = float(self.spec["exponent"])

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
