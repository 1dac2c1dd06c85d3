"""``tce``: Truncated BCE (Wang et al. WSDM 2021), a loss-based re-weighting baseline.

Per mini-batch the positives with the largest BCE are dropped (they are the likely noisy
interactions); the drop rate grows linearly with the iteration count, ``drop_rate * min(step /
num_gradual, 1)``, from 0 to ``drop_rate`` after ``num_gradual`` mini-batches and stays there.
Defaults are the original code's (0.2, 30000); both are searched. See
:func:`deca_tune.losses.truncated_bce.truncated_bce` for how the dropped count is defined.
"""
from __future__ import annotations

from deca_tune.losses.truncated_bce import truncated_bce
from deca_tune.methods import REC_METHODS
from deca_tune.methods.base import RecMethod
from deca_tune.methods.normal import pair_logits


@REC_METHODS.register("tce")
class TCE(RecMethod):
    """BCE with the largest-loss positives of every batch dropped, at a growing rate."""

    defaults = {"drop_rate": 0.2, "num_gradual": 30000}

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.drop_rate = float(self.spec["drop_rate"])
        self.num_gradual = int(self.spec["num_gradual"])
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"spec key 'drop_rate' must lie in [0, 1), got {self.spec['drop_rate']!r}")
        if self.num_gradual < 1:
            raise ValueError(f"spec key 'num_gradual' must be >= 1, got {self.spec['num_gradual']!r}")

    def rate_at(self, step: int) -> float:
        return self.drop_rate * min(step / self.num_gradual, 1.0)

    def batch_loss(self, users, pos, neg, step):
        pos_logits, neg_logits = pair_logits(self.f, users, pos, neg)
        rate = self.rate_at(step)
        loss, _ = truncated_bce(pos_logits, neg_logits, rate)
        return loss, {"tce": float(loss.detach()), "tce/drop_rate": rate}
