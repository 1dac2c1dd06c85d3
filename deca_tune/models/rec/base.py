"""Shared pieces of the recommendation backbones."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Literal

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
    #: embedding tables (attribute names) indexed by user / by item: the rows the ``linear``
    #: recipe's batch L2 regularises (:func:`batch_rows_l2`); other parameters get the full L2
    user_tables: ClassVar[tuple[str, ...]] = ()
    item_tables: ClassVar[tuple[str, ...]] = ()

    def use_row_gradients(self, on: bool = True) -> None:
        """The ``linear`` recipe: every embedding table read through :func:`lookup` hands the
        gradient of the rows a batch looks up to :class:`~deca_tune.training.adam.LazyAdam`
        (:func:`row_lookup`) instead of a dense gradient of the whole table. A backbone whose
        training forward reads a whole table (NeuMF's factorised first layer) turns that off here."""
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                module.row_grad = bool(on)

    def row_tables(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """The weights of :attr:`user_tables` and :attr:`item_tables`."""
        return ([getattr(self, n).weight for n in self.user_tables],
                [getattr(self, n).weight for n in self.item_tables])

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
    sort, about 2.4x faster for a 4096-index batch (issue 13). A table with ``row_grad`` set (the
    ``linear`` recipe, :meth:`RecBackbone.use_row_gradients`) goes through :func:`row_lookup`."""
    if getattr(emb, "row_grad", False) and torch.is_grad_enabled() and emb.weight.requires_grad:
        return row_lookup(emb.weight, index.reshape(-1)).view(*index.shape, emb.weight.shape[1])
    return emb.weight.index_select(0, index.reshape(-1)).view(*index.shape, emb.weight.shape[1])


def embed(emb: nn.Embedding, index: torch.Tensor) -> torch.Tensor:
    """``emb(index)``, or :func:`lookup`'s row gradients when the ``linear`` recipe set
    ``row_grad`` on the table (for backbones that call the module, CDAE)."""
    return lookup(emb, index) if getattr(emb, "row_grad", False) else emb(index)


#: the attribute of a table holding its row gradients until the optimiser step
ROW_GRADS = "_row_grads"


class _RowLookup(torch.autograd.Function):
    """``weight.index_select(0, index)`` whose backward hands ``(index, grad rows)`` to the table
    (:func:`take_row_grads`) instead of building a gradient of the table's shape."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.weight = weight
        ctx.save_for_backward(index)
        return weight.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None]:  # type: ignore[override]
        (index,) = ctx.saved_tensors
        add_row_grads(ctx.weight, index, grad)
        return None, None


def row_lookup(weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` (1-d) of ``weight`` for the ``linear`` recipe: autograd leaves
    ``weight.grad`` alone and the backward appends ``(index, gradient rows)`` to the table's row
    gradients, which :class:`~deca_tune.training.adam.LazyAdam` sums per distinct row and applies
    to those rows only. Why not ``sparse=True`` embeddings: torch's sparse backward and the
    accumulation of two sparse gradients (which coalesces) cost 0.4-1.2 ms per 4096-row batch
    here, more than a dense update of an ML-100K table."""
    return _RowLookup.apply(weight, index)


def add_row_grads(weight: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> None:
    """Hand ``weight`` the gradient ``rows`` of its rows ``index`` (what :func:`row_lookup`'s
    backward does; the ``linear`` recipe's batch L2 adds its gradient this way)."""
    weight.__dict__.setdefault(ROW_GRADS, []).append((index, rows))


@contextmanager
def dense_lookups(module: nn.Module) -> Iterator[None]:
    """Inside: every embedding table of ``module`` is read with a plain lookup, so autograd
    reaches the tables (``torch.autograd.grad`` over the parameters) and nothing is handed to
    the optimiser's row gradients; on exit, each table reads as it did before. For measurements
    beside training, e.g. DeCA's agreement probe, which must not leave row gradients behind for
    the next ``linear`` step."""
    tables = [m for m in module.modules() if isinstance(m, nn.Embedding)]
    before = [getattr(m, "row_grad", False) for m in tables]
    for m in tables:
        m.row_grad = False
    try:
        yield
    finally:
        for m, on in zip(tables, before):
            m.row_grad = on


def take_row_grads(weight: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The ``(index, gradient rows)`` parts handed to ``weight`` since the last call (duplicate
    rows not summed), in the order they came; clears them."""
    return weight.__dict__.pop(ROW_GRADS, None) or []
