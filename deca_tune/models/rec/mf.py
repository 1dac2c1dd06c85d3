"""MF: the inner product of user and item embeddings (the default auxiliary and noise model)."""
from __future__ import annotations

import torch

from deca_tune.models.registry import REC_BACKBONES
from deca_tune.models.rec.base import RecBackbone, init_embedding, lookup


@REC_BACKBONES.register("mf")
class MF(RecBackbone):
    user_tables, item_tables = ("user",), ("item",)

    def __init__(self, n_users: int, n_items: int, dim: int = 32) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.user = init_embedding(n_users, dim)
        self.item = init_embedding(n_items, dim)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (lookup(self.user, users) * lookup(self.item, items)).sum(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.user(users) @ self.item.weight.T
