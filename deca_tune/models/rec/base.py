"""Shared pieces of the recommendation backbones."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from deca_tune.data.interactions import RecSplit


@dataclass(frozen=True)
class TrainingRecipe:
    """How the one rec loop (``deca_tune.training.rec_trainer``) trains a backbone.

    - ``batching``: ``"pairs"``: mini-batches of ``batch_size`` shuffled training positives, each
      with ``neg_ratio`` negatives from the method's sampler (paired with the positive's user);
      ``"rows"``: mini-batches of ``batch_size`` user rows (all users permuted, empty rows
      dropped), all positives of the batch rows plus ``#pos * neg_ratio`` zero entries drawn
      without replacement from the batch's user x item matrix (negatives with their own users;
      the DeCA authors' CDAE training). Methods whose ``batch_loss`` takes no ``neg_users`` get
      ``"pairs"`` batches on any backbone.
    - ``l2``: ``"squared"``: ``l2 / (2 n_users) * sum_p ||p||^2`` (the DeCA authors' GMF, NeuMF,
      LightGCN); ``"norm"``: ``l2 * sum_p ||p||_2`` (their CDAE: unsquared, not divided), over the
      method's regularised parameters (the target model's).
    - ``reduction``: ``normal``'s BCE: ``"mean"`` over the positives plus mean over the negatives,
      or ``"sum"`` over both (their CDAE).
    """

    batching: Literal["pairs", "rows"] = "pairs"
    l2: Literal["squared", "norm"] = "squared"
    reduction: Literal["mean", "sum"] = "mean"


#: the recipe of every backbone that declares none
PAIRS = TrainingRecipe()


def recipe_of(model: Any) -> TrainingRecipe:
    """The :class:`TrainingRecipe` a model declares (``PAIRS`` when it declares none)."""
    return getattr(model, "recipe", PAIRS)


class RecBackbone(nn.Module):
    """Base class: subclasses implement ``forward(users, items)`` and ``score_all(users)``."""

    n_users: int
    n_items: int
    #: how the rec loop trains this backbone
    recipe: ClassVar[TrainingRecipe] = PAIRS

    @classmethod
    def from_split(cls, split: RecSplit, **kwargs: Any) -> "RecBackbone":
        return cls(split.n_users, split.n_items, **kwargs)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def score_all(self, users: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


def init_embedding(num: int, dim: int, std: float = 0.01) -> nn.Embedding:
    emb = nn.Embedding(num, dim)
    nn.init.normal_(emb.weight, std=std)
    return emb


def lookup(emb: nn.Embedding, index: torch.Tensor) -> torch.Tensor:
    """``emb(index)`` through ``index_select``: the same rows and the same gradient (bit for bit
    on the CPU), but its backward is one ``index_add_`` instead of ``embedding_dense_backward``'s
    sort, about 2.4x faster for a 4096-index batch (issue 13)."""
    return emb.weight.index_select(0, index.reshape(-1)).view(*index.shape, emb.weight.shape[1])
