"""NeuMF (He et al. 2017): GMF and an MLP tower fused by a final dense layer.

The tower's first layer is linear in ``concat(u, i)``: ``W [u; i] + b = W_u u + W_i i + b``, so
training (``forward``, when the tables are smaller than twice the batch and no dropout is active)
and ranking (``score_all``) compute it once per user and per item and add the halves per pair;
the values are those of the per-pair layer up to float rounding.
"""
from __future__ import annotations

import torch
from torch import nn

from deca_tune.models.registry import REC_BACKBONES
from deca_tune.models.rec.base import RecBackbone, init_embedding, lookup


@REC_BACKBONES.register("neumf")
class NeuMF(RecBackbone):
    """Factor 32 and a 3-layer tower as in the NCF/T-CE code: MLP embeddings are 32 * 2**2 wide."""

    #: ``score_all``: (user, item) pairs per block of the tower and items per block (issue 13:
    #: blocks that fit the CPU cache instead of 2^19-pair chunks with ~270 MB intermediates)
    score_block_pairs = 2048
    score_item_block = 512
    #: training forward: the first tower layer factorised over the embedding tables (see forward)
    factorised_forward = True
    user_tables, item_tables = ("user_gmf", "user_mlp"), ("item_gmf", "item_mlp")

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

    def use_row_gradients(self, on: bool = True) -> None:
        """:meth:`RecBackbone.use_row_gradients`; the factorised forward reads whole tables, so
        it is off while row gradients are on."""
        super().use_row_gradients(on)
        self.factorised_forward = not on

    def _fuse(self, u_gmf, i_gmf, u_mlp, i_mlp) -> torch.Tensor:
        gmf = u_gmf * i_gmf
        mlp = self.mlp(torch.cat([u_mlp, i_mlp], dim=-1))
        return self.predict(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)

    def _dropout_active(self) -> bool:
        return self.training and any(isinstance(m, nn.Dropout) and m.p > 0 for m in self.mlp)

    def _first_layer_halves(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The tower's first layer on every user and every item: ``W_u u`` ``[n_users, width]`` and
        ``W_i i + b`` ``[n_items, width]`` (``W [u; i] + b = W_u u + W_i i + b``)."""
        first, half = self.mlp[1], self.user_mlp.embedding_dim
        user_part = self.user_mlp.weight @ first.weight[:, :half].T
        item_part = torch.addmm(first.bias, self.item_mlp.weight, first.weight[:, half:].T)
        return user_part, item_part

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        n = users.numel()
        if not self.factorised_forward or self._dropout_active() or self.n_users + self.n_items > 2 * n:
            # per pair (dropout sits before the first layer, or the tables outsize the batch)
            return self._fuse(lookup(self.user_gmf, users), lookup(self.item_gmf, items),
                              lookup(self.user_mlp, users), lookup(self.item_mlp, items))
        # The first layer factorised over the tables: (n_users + n_items) x width^2 / 2 instead
        # of batch x width^2 multiply-adds, half of a NeuMF step's arithmetic on ML-100K.
        user_part, item_part = self._first_layer_halves()
        hidden = torch.relu(user_part.index_select(0, users) + item_part.index_select(0, items))
        mlp = self.mlp[3:](hidden)
        gmf = lookup(self.user_gmf, users) * lookup(self.item_gmf, items)
        return self.predict(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for ``users`` ``[B, n_items]``: the first tower layer factorised
        into user and item halves (computed once, broadcast), the rest of the tower on blocks of
        ``score_block_pairs`` (user, item) pairs of ``score_item_block`` items, small enough for
        the intermediates to stay in the CPU cache, written into reused buffers (``addmm``
        with ``out=``, in-place ReLU). Dropout is off (evaluation), unless the model is in
        training mode with a dropout rate > 0."""
        d = self.user_gmf.embedding_dim
        gmf_w, mlp_w = self.predict.weight[0, :d], self.predict.weight[0, d:]
        out = torch.addmm(self.predict.bias, lookup(self.user_gmf, users) * gmf_w, self.item_gmf.weight.T)
        _, item_part = self._first_layer_halves()
        first, half = self.mlp[1], self.user_mlp.embedding_dim
        user_part = lookup(self.user_mlp, users) @ first.weight[:, :half].T
        rest = [m for m in self.mlp[3:] if isinstance(m, nn.Linear)]
        modules = self._dropout_active()
        weights = [(lin.bias, lin.weight.T) for lin in rest]
        n_items, width = item_part.shape
        ib = min(n_items, self.score_item_block)
        ub = max(1, self.score_block_pairs // ib)
        hidden = out.new_empty(ub * ib, width)
        buffers = [out.new_empty(ub * ib, lin.out_features) for lin in rest]
        for i0 in range(0, n_items, ib):
            items = item_part[i0:i0 + ib]
            ni = items.shape[0]
            for u0 in range(0, len(users), ub):
                b = min(ub, len(users) - u0)
                h = hidden[: b * ni]
                torch.add(user_part[u0:u0 + b, None, :], items[None], out=h.view(b, ni, width))
                h.relu_()
                if modules:
                    h = self.mlp[3:](h)
                else:
                    for (bias, wt), buf in zip(weights, buffers):
                        h = torch.addmm(bias, h, wt, out=buf[: b * ni]).relu_()
                out[u0:u0 + b, i0:i0 + ni] += (h @ mlp_w).view(b, ni)
        return out
