"""LightGCN (He et al. 2020): embeddings propagated over the normalised user-item graph,
averaged over layers 0..L; the score is the inner product of the final embeddings."""
from __future__ import annotations

import torch

from deca_tune.data.interactions import RecSplit
from deca_tune.models.registry import REC_BACKBONES
from deca_tune.models.rec.base import RecBackbone, init_embedding
from deca_tune.models.rec.graph import normalized_adjacency


@REC_BACKBONES.register("lightgcn")
class LightGCN(RecBackbone):
    def __init__(self, n_users: int, n_items: int, adjacency: torch.Tensor, dim: int = 64,
                 num_layers: int = 3) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.num_layers = num_layers
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.user = init_embedding(n_users, dim, std=0.1)
        self.item = init_embedding(n_items, dim, std=0.1)

    @classmethod
    def from_split(cls, split: RecSplit, **kwargs) -> "LightGCN":
        return cls(split.n_users, split.n_items,
                   normalized_adjacency(split.train, split.n_users, split.n_items), **kwargs)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.user.weight, self.item.weight])
        total = x
        for _ in range(self.num_layers):
            x = self.adjacency @ x
            total = total + x
        out = total / (self.num_layers + 1)
        return out[: self.n_users], out[self.n_users:]

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        u, i = self.propagate()
        return (u[users] * i[items]).sum(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        u, i = self.propagate()
        return u[users] @ i.T
