"""LightGCN (He et al. 2020): embeddings propagated over the normalised user-item graph,
averaged over layers 0..L; the score is the inner product of the final embeddings.

Training propagates once per forward call (one per mini-batch step of ``normal``: the batch's
positives and negatives are scored in one call), through :func:`symmetric_spmm`, whose backward
is one more sparse product with the same symmetric matrix, computed with ``embedding_bag`` over
the CSR rows (:class:`SparseRows`: the same sums up to float rounding, 3x faster on a CPU).
Without gradient (evaluation, DeCA(p)'s frozen prior) the propagated tables are cached and
recomputed only when a weight changed (in-place updates bump a tensor's version counter), so
ranking all users in batches, or scoring every step with a frozen model, propagates once.
"""
from __future__ import annotations

from typing import Any

import torch

from deca_tune.data.interactions import RecSplit
from deca_tune.models.registry import REC_BACKBONES
from deca_tune.models.rec.base import RecBackbone, init_embedding
from deca_tune.models.rec.graph import SparseRows, normalized_adjacency, symmetric_spmm


@REC_BACKBONES.register("lightgcn")
class LightGCN(RecBackbone):
    user_tables, item_tables = ("user",), ("item",)

    def __init__(self, n_users: int, n_items: int, adjacency: torch.Tensor, dim: int = 64,
                 num_layers: int = 3) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.num_layers = num_layers
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.user = init_embedding(n_users, dim, std=0.1)
        self.item = init_embedding(n_items, dim, std=0.1)
        self._cache: tuple[Any, tuple[torch.Tensor, torch.Tensor]] | None = None
        self._rows: SparseRows | None = None  # the adjacency for embedding_bag, on its device

    def _sparse_rows(self) -> SparseRows:
        if self._rows is None or self._rows.values.device != self.adjacency.device:
            self._rows = SparseRows(self.adjacency)
        return self._rows

    @classmethod
    def from_split(cls, split: RecSplit, **kwargs) -> "LightGCN":
        return cls(split.n_users, split.n_items,
                   normalized_adjacency(split.train, split.n_users, split.n_items), **kwargs)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user and item embeddings: the mean of layers 0..L of ``A^l x``."""
        x = torch.cat([self.user.weight, self.item.weight])
        total = x
        adjacency = self._sparse_rows()
        for _ in range(self.num_layers):
            x = symmetric_spmm(adjacency, x)
            total = total + x
        out = total / (self.num_layers + 1)
        return out[: self.n_users], out[self.n_users:]

    def _weights_key(self) -> tuple:
        return tuple((p.data_ptr(), p._version, p.device) for p in (self.user.weight, self.item.weight)) + (
            self.adjacency.device,)

    def propagated(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`propagate`, from the cache when no gradient is recorded and no weight changed."""
        if torch.is_grad_enabled():
            return self.propagate()
        key = self._weights_key()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.propagate())
        return self._cache[1]

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        u, i = self.propagated()
        return (u.index_select(0, users) * i.index_select(0, items)).sum(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        u, i = self.propagated()
        return u.index_select(0, users) @ i.T

    def _apply(self, fn, *args, **kwargs):  # .to(), .cpu(), ...: drop the caches with the weights
        self._cache = None
        self._rows = None
        return super()._apply(fn, *args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:  # deepcopy / pickle never carry the cache
        state = dict(self.__dict__)
        state["_cache"] = None
        state["_rows"] = None
        return state
