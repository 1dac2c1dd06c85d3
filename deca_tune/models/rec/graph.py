"""User-item interaction structures built once from the training pairs (CSR rows, adjacency)."""
from __future__ import annotations

import warnings

import numpy as np
import torch


def csr_rows(train: np.ndarray, n_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(indptr, items)`` of the user x item training matrix, items sorted within each row."""
    order = np.lexsort((train[:, 1], train[:, 0]))
    items = torch.as_tensor(train[order, 1], dtype=torch.long)
    counts = np.bincount(train[:, 0], minlength=n_users)
    indptr = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)]), dtype=torch.long)
    return indptr, items


def gather_rows(indptr: torch.Tensor, values: torch.Tensor,
                rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenated CSR rows for ``rows``: ``(values, offsets)`` as ``nn.EmbeddingBag`` takes them."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    offsets = torch.cumsum(lengths, 0) - lengths
    total = int(lengths.sum())
    within = torch.arange(total, device=values.device) - torch.repeat_interleave(offsets, lengths)
    return values[torch.repeat_interleave(starts, lengths) + within], offsets


def normalized_adjacency(train: np.ndarray, n_users: int, n_items: int) -> torch.Tensor:
    """D^-1/2 A D^-1/2 of the bipartite graph (users first, then items), no self loops."""
    pairs = np.unique(train, axis=0)
    u = torch.as_tensor(pairs[:, 0], dtype=torch.long)
    i = torch.as_tensor(pairs[:, 1], dtype=torch.long) + n_users
    rows = torch.cat([u, i])
    cols = torch.cat([i, u])
    n = n_users + n_items
    deg = torch.bincount(rows, minlength=n).float()
    inv_sqrt = deg.pow(-0.5)
    inv_sqrt[deg == 0] = 0.0
    vals = inv_sqrt[rows] * inv_sqrt[cols]
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (n, n), check_invariants=True)
    with warnings.catch_warnings():  # CSR is "beta" in torch; it is the fast layout for spmm
        warnings.simplefilter("ignore", UserWarning)
        return coo.coalesce().to_sparse_csr()
