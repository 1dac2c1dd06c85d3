"""Shared pieces of the recommendation backbones."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deca_tune.data.interactions import RecSplit


class RecBackbone(nn.Module):
    """Base class: subclasses implement ``forward(users, items)`` and ``score_all(users)``."""

    n_users: int
    n_items: int

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
