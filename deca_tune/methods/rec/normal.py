"""``normal``: plain binary cross-entropy on positives and sampled negatives."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from deca_tune.methods.registry import REC_METHODS
from deca_tune.methods.rec.base import RecMethod


def pair_logits(model: torch.nn.Module, users: torch.Tensor, pos: torch.Tensor,
                neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of the positives ``[B]`` and of the negatives ``[B, ratio]`` in one forward."""
    b, r = neg.shape
    items = torch.cat([pos, neg.reshape(-1)])
    all_users = torch.cat([users, users.repeat_interleave(r)])
    logits = model(all_users, items)
    return logits[:b], logits[b:].reshape(b, r)


def bce_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """Mean BCE over the positives plus mean BCE over the negatives (the DeCA authors' scaling)."""
    pos = F.binary_cross_entropy_with_logits(pos_logits, torch.ones_like(pos_logits))
    neg = F.binary_cross_entropy_with_logits(neg_logits, torch.zeros_like(neg_logits))
    return pos + neg


@REC_METHODS.register("normal")
class Normal(RecMethod):
    """Train the target model on the noisy labels as they are (the paper's baseline)."""

    def batch_loss(self, users, pos, neg, step):
        pos_logits, neg_logits = pair_logits(self.f, users, pos, neg)
        loss = bce_loss(pos_logits, neg_logits)
        return loss, {"bce": float(loss.detach())}
