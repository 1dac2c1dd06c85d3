"""GMF (He et al. 2017): element-wise product of embeddings followed by a dense layer."""
from __future__ import annotations

import torch
from torch import nn

from deca_tune.models.registry import REC_BACKBONES
from deca_tune.models.rec.base import RecBackbone, init_embedding, lookup


@REC_BACKBONES.register("gmf")
class GMF(RecBackbone):
    user_tables, item_tables = ("user",), ("item",)

    def __init__(self, n_users: int, n_items: int, dim: int = 32) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.user = init_embedding(n_users, dim)
        self.item = init_embedding(n_items, dim)
        self.predict = nn.Linear(dim, 1)
        nn.init.kaiming_uniform_(self.predict.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.predict.bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.predict(lookup(self.user, users) * lookup(self.item, items)).squeeze(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        # (p_u * q_i) . w + b  ==  (p_u * w) . q_i + b, so one matrix product scores every item
        weighted = self.user(users) * self.predict.weight.squeeze(0)
        # addmm: the bias added in the product's output pass, not in a second pass over the
        # scores (the same numbers as ``@`` then ``+`` here; issue 21's full ranking at 10M rows)
        return torch.addmm(self.predict.bias, weighted, self.item.weight.T)
