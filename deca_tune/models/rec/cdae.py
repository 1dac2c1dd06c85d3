"""CDAE (Wu et al. 2016): a denoising auto-encoder of the user's interaction row plus a user node.

hidden_u = sigmoid(W^T corrupt(y_u) + V_u + b);  logit(u, i) = W'_i . hidden_u + b'_i.
Scoring ``(u, i)`` pairs this way trains CDAE on user rows inside the same pairwise loop as the
other backbones: the reconstruction loss restricted to the positives and sampled negatives, which
is how the CDAE paper trains it (negative sampling over the reconstruction).
"""
from __future__ import annotations

import torch
from torch import nn

from deca_tune.data.interactions import RecSplit
from deca_tune.models.registry import REC_BACKBONES
from deca_tune.models.rec.base import RecBackbone, init_embedding
from deca_tune.models.rec.graph import csr_rows, gather_rows


@REC_BACKBONES.register("cdae")
class CDAE(RecBackbone):
    def __init__(self, n_users: int, n_items: int, indptr: torch.Tensor, row_items: torch.Tensor,
                 hidden: int = 32, corruption: float = 0.2) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.corruption = corruption
        self.register_buffer("indptr", indptr, persistent=False)
        self.register_buffer("row_items", row_items, persistent=False)
        self.encoder = nn.EmbeddingBag(n_items, hidden, mode="sum")
        nn.init.normal_(self.encoder.weight, std=0.01)
        self.user_node = init_embedding(n_users, hidden)
        self.hidden_bias = nn.Parameter(torch.zeros(hidden))
        self.decoder = init_embedding(n_items, hidden)
        self.decoder_bias = nn.Parameter(torch.zeros(n_items))

    @classmethod
    def from_split(cls, split: RecSplit, **kwargs) -> "CDAE":
        indptr, row_items = csr_rows(split.train, split.n_users)
        return cls(split.n_users, split.n_items, indptr, row_items, **kwargs)

    def hidden(self, users: torch.Tensor) -> torch.Tensor:
        items, offsets = gather_rows(self.indptr, self.row_items, users)
        weights = None
        if self.training and self.corruption > 0:
            keep = torch.rand(items.shape, device=items.device) >= self.corruption
            weights = keep.float() / (1.0 - self.corruption)
        enc = self.encoder(items, offsets, per_sample_weights=weights)
        return torch.sigmoid(enc + self.user_node(users) + self.hidden_bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        uniq, inverse = torch.unique(users, return_inverse=True)
        h = self.hidden(uniq)[inverse]
        return (h * self.decoder(items)).sum(-1) + self.decoder_bias[items]

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.hidden(users) @ self.decoder.weight.T + self.decoder_bias
