"""``normal``: plain binary cross-entropy on positives and sampled negatives.

The loss is the base BCE of every rec method (:func:`deca_tune.losses.bce.bce_loss`) in the
backbone's ``TrainingRecipe.reduction``: mean over the positives plus mean over the negatives
(every backbone but the authors' CDAE), or the sum over both (``cdae``). Every baseline applies
its mechanism inside this loss, so at its "off" setting it trains exactly as ``normal``
(``tests/test_nesting.py``).
"""
from __future__ import annotations

import torch

from deca_tune.losses.bce import bce_loss  # noqa: F401  (the base loss; imported from here too)
from deca_tune.methods.registry import REC_METHODS
from deca_tune.methods.rec.base import RecMethod
from deca_tune.models.rec.base import recipe_of


def pair_logits(model: torch.nn.Module, users: torch.Tensor, pos: torch.Tensor,
                neg: torch.Tensor, neg_users: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of the positives ``[B]`` and of the negatives in one forward: ``neg`` ``[B, ratio]``
    paired with ``users``, or, with ``neg_users`` (the rows batching), ``neg`` items of their own
    users ``neg_users`` (same shape); the negatives' logits have ``neg``'s shape."""
    b = pos.shape[0]
    all_users, items = pair_index(users, pos, neg, neg_users)
    logits = model(all_users, items)
    return logits[:b], logits[b:].reshape(neg.shape)


#: the last batch :func:`pair_index` saw and its result (DeCA scores one batch with 3-4 models)
_LAST_PAIRS: list[tuple] = []


def pair_index(users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
               neg_users: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(users, items)`` of the positives followed by the negatives, as :func:`pair_logits`
    scores them; the same tensors again when called again with the same batch tensors."""
    if _LAST_PAIRS:
        last = _LAST_PAIRS[0]
        if last[0] is users and last[1] is pos and last[2] is neg and last[3] is neg_users:
            return last[4]
    if neg_users is None:
        all_users = torch.cat([users, users.repeat_interleave(neg.shape[1])])
    else:
        all_users = torch.cat([users, neg_users.reshape(-1)])
    out = (all_users, torch.cat([pos, neg.reshape(-1)]))
    _LAST_PAIRS[:] = [(users, pos, neg, neg_users, out)]  # holds the batch: ids stay unique
    return out


@REC_METHODS.register("normal")
class Normal(RecMethod):
    """Train the target model on the noisy labels as they are (the paper's baseline)."""

    def batch_loss(self, users, pos, neg, step, neg_users=None):
        pos_logits, neg_logits = pair_logits(self.f, users, pos, neg, neg_users)
        loss = bce_loss(pos_logits, neg_logits, reduction=recipe_of(self.f).reduction)
        return loss, {"bce": loss.detach()}  # a tensor: the loop sums parts once per epoch
