"""NeuMF (He et al. 2017): GMF and an MLP tower fused by a final dense layer."""
from __future__ import annotations

import torch
from torch import nn

from deca_tune.models.registry import REC_BACKBONES
from deca_tune.models.rec.base import RecBackbone, init_embedding


@REC_BACKBONES.register("neumf")
class NeuMF(RecBackbone):
    """Factor 32 and a 3-layer tower as in the NCF/T-CE code: MLP embeddings are 32 * 2**2 wide."""

    #: pairs scored at once in ``score_all`` (bounds the MLP's activation memory)
    max_pairs_per_chunk = 1 << 19

    def __init__(self, n_users: int, n_items: int, dim: int = 32, num_layers: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.user_gmf = init_embedding(n_users, dim)
        self.item_gmf = init_embedding(n_items, dim)
        mlp_dim = dim * 2 ** (num_layers - 1)
        self.user_mlp = init_embedding(n_users, mlp_dim)
        self.item_mlp = init_embedding(n_items, mlp_dim)
        layers: list[nn.Module] = []
        width = mlp_dim * 2
        for _ in range(num_layers):
            layers += [nn.Dropout(dropout), nn.Linear(width, width // 2), nn.ReLU()]
            width //= 2
        self.mlp = nn.Sequential(*layers)
        self.predict = nn.Linear(dim * 2, 1)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.kaiming_uniform_(self.predict.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.predict.bias)

    def _fuse(self, u_gmf, i_gmf, u_mlp, i_mlp) -> torch.Tensor:
        gmf = u_gmf * i_gmf
        mlp = self.mlp(torch.cat([u_mlp, i_mlp], dim=-1))
        return self.predict(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._fuse(self.user_gmf(users), self.item_gmf(items),
                          self.user_mlp(users), self.item_mlp(items))

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        # The first tower layer is linear in concat(u, i) = W_u u + W_i i + b: compute the user
        # and item halves once and broadcast, instead of running it on every (user, item) pair.
        first = self.mlp[1]
        half = self.user_mlp.embedding_dim
        item_part = self.item_mlp.weight @ first.weight[:, half:].T  # [n_items, width]
        gmf_w, mlp_w = self.predict.weight[0, : self.user_gmf.embedding_dim], self.predict.weight[0, self.user_gmf.embedding_dim:]
        gmf_scores = (self.user_gmf(users) * gmf_w) @ self.item_gmf.weight.T  # [B, n_items]
        chunk = max(1, self.max_pairs_per_chunk // self.n_items)
        out = []
        for start in range(0, len(users), chunk):  # chunks of users bound memory; not per user
            u = users[start:start + chunk]
            user_part = self.user_mlp(u) @ first.weight[:, :half].T + first.bias  # [b, width]
            hidden = torch.relu(user_part[:, None, :] + item_part[None, :, :])
            tower = self.mlp[3:](hidden)  # [b, n_items, dim]
            out.append(tower @ mlp_w)
        return gmf_scores + torch.cat(out) + self.predict.bias
