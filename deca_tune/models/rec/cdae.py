"""CDAE (Wu et al. 2016): a denoising auto-encoder of the user's interaction row plus a user node.

Two registered forms:

``cdae`` (default): the CDAE of the DeCA authors' code (github wangyu-ustc/DeCA, ``CDAE.py``
and ``train.py:CDAE_train``), what their Table 2 CDAE rows were trained with::

    x_ui     = R_ui / sqrt(||R_u||_2 * ||R_:,i||_2)      (R binary: (n_u * m_i) ** -1/4)
    hidden_u = tanh(W dropout_0.5(x_u) + b + V_u)
    logit_ui = W'_i . hidden_u + b'_i                    (their output: sigmoid of it)

- ``||R_:,i||`` is, as in their forward, the item's norm over the rows *of the current batch*
  (in training: the distinct users of the call, which in the rows batching is the batch's user
  rows; on ML-100K one batch holds every user, so it is the item's full count). In eval mode
  (our evaluation; theirs never leaves train mode) a fixed reference replaces it, so scores do
  not depend on how evaluation batches users: the expected batch count of the item given that
  the scored user (who has it) is in a random training batch of ``batch_users`` rows,
  ``m_i = 1 + (count_i - 1) * (B - 1) / (n_users - 1)`` capped at ``count_i`` (exactly
  ``count_i`` when one batch holds all users, as on ML-100K). The loop sets ``batch_users`` from
  the spec's ``batch_size``.
- corruption 0.5 (inverted dropout on the normalised row, training only), hidden 32, tanh;
- inits as PyTorch's defaults in their modules: user node ``nn.Embedding`` N(0, 1); encoder and
  decoder as ``nn.Linear`` (weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in =
  n_items for the encoder, hidden for the decoder);
- trained on batches of user rows with all their positives plus as many zero entries drawn from
  the batch matrix, BCE summed, L2 ``lambda * sum_p ||p||_2`` (:attr:`CDAE.recipe`; the loop does
  it, see ``TrainingRecipe``).

The encoder is an ``nn.EmbeddingBag`` over each row's items weighted by ``x_ui`` (same result as
their dense ``Linear(n_items, hidden)`` on the dense row; its weight is that Linear's weight
transposed).

``cdae-pairwise``: this project's earlier CDAE, kept to reproduce earlier runs: sigmoid hidden
layer, corruption 0.2, no normalisation, N(0, 0.01) inits, trained like every other backbone on
shuffled (user, item) pairs with sampled negatives (the reconstruction loss restricted to the
positives and sampled negatives) and the squared L2.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from deca_tune.data.interactions import RecSplit
from deca_tune.models.registry import REC_BACKBONES
from deca_tune.models.rec.base import RecBackbone, TrainingRecipe, embed, init_embedding
from deca_tune.models.rec.graph import csr_rows, gather_rows

#: the DeCA authors' CDAE training (train.py:206-313): user-row batches, summed BCE, unsquared L2
AUTHORS_CDAE_RECIPE = TrainingRecipe(batching="rows", l2="norm", reduction="sum")


def reference_item_counts(counts: torch.Tensor, n_users: int, batch_users: int) -> torch.Tensor:
    """The evaluation stand-in for an item's count over a training batch's rows: its expected
    count in a random batch of ``batch_users`` of ``n_users`` rows that holds the scored user
    (who has the item), ``1 + (count - 1) * (B - 1) / (n_users - 1)``, at most ``count``."""
    counts = counts.double()
    if batch_users >= n_users or n_users <= 1:
        return counts.float()
    ref = 1.0 + (counts - 1.0).clamp_min(0.0) * (batch_users - 1) / (n_users - 1)
    return torch.minimum(ref, counts).float()


@REC_BACKBONES.register("cdae")
class CDAE(RecBackbone):
    """The DeCA authors' CDAE (see the module docstring)."""

    recipe = AUTHORS_CDAE_RECIPE
    user_tables, item_tables = ("user_node",), ("decoder",)

    def __init__(self, n_users: int, n_items: int, indptr: torch.Tensor, row_items: torch.Tensor,
                 hidden: int = 32, corruption: float = 0.5, batch_users: int = 2048) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.corruption = float(corruption)
        self.register_buffer("indptr", indptr, persistent=False)
        self.register_buffer("row_items", row_items, persistent=False)
        degree = (indptr[1:] - indptr[:-1]).float()
        #: ||R_u||_2 of the binary training row
        self.register_buffer("user_norm", degree.sqrt(), persistent=False)
        #: the item's number of training users (the batch count when one batch holds all users)
        self.register_buffer("item_count", torch.bincount(row_items, minlength=n_items).float(),
                             persistent=False)
        self.batch_users = int(batch_users)
        # nn.Linear(n_items, hidden) of their encoder, stored transposed in an EmbeddingBag
        self.encoder = nn.EmbeddingBag(n_items, hidden, mode="sum")
        bound = 1.0 / math.sqrt(n_items)
        nn.init.uniform_(self.encoder.weight, -bound, bound)
        self.encoder_bias = nn.Parameter(torch.empty(hidden).uniform_(-bound, bound))
        self.user_node = nn.Embedding(n_users, hidden)  # PyTorch default N(0, 1), as theirs
        bound = 1.0 / math.sqrt(hidden)
        self.decoder = nn.Embedding(n_items, hidden)  # nn.Linear(hidden, n_items).weight
        nn.init.uniform_(self.decoder.weight, -bound, bound)
        self.decoder_bias = nn.Parameter(torch.empty(n_items).uniform_(-bound, bound))

    @classmethod
    def from_split(cls, split: RecSplit, **kwargs) -> "CDAE":
        indptr, row_items = csr_rows(split.train, split.n_users)
        return cls(split.n_users, split.n_items, indptr, row_items, **kwargs)

    @property
    def batch_users(self) -> int:
        return self._batch_users

    @batch_users.setter
    def batch_users(self, value: int) -> None:
        self._batch_users = int(value)
        self._reference = None

    def reference_counts(self) -> torch.Tensor:
        if self._reference is None or self._reference.device != self.item_count.device:
            self._reference = reference_item_counts(self.item_count, self.n_users, self._batch_users)
        return self._reference

    def input_weights(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(items, offsets, x)``: the CSR rows of ``users`` (distinct) and their normalised
        entries ``x_ui = (n_u * m_i) ** -1/4``, ``m_i`` counted over these rows in training mode,
        the reference counts in eval mode (before corruption)."""
        items, offsets = gather_rows(self.indptr, self.row_items, users)
        lengths = self.indptr[users + 1] - self.indptr[users]
        if self.training:
            counts = torch.bincount(items, minlength=self.n_items).float()
        else:
            counts = self.reference_counts()
        user_norm = torch.repeat_interleave(self.user_norm[users], lengths)
        x = torch.rsqrt(user_norm * counts[items].sqrt())
        return items, offsets, x

    def hidden(self, users: torch.Tensor) -> torch.Tensor:
        """``tanh(W dropout(x_u) + b + V_u)`` for distinct ``users``."""
        items, offsets, x = self.input_weights(users)
        if self.training and self.corruption > 0:
            keep = torch.rand(items.shape, device=items.device) >= self.corruption
            x = x * keep.float() / (1.0 - self.corruption)
        enc = self.encoder(items, offsets, per_sample_weights=x)
        return torch.tanh(enc + self.encoder_bias + embed(self.user_node, users))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # one hidden layer per distinct user: one corruption draw and one batch normalisation
        # for all pairs of the call (the authors score every entry from one forward of the batch)
        uniq, inverse = torch.unique(users, return_inverse=True)
        h = self.hidden(uniq)[inverse]
        return (h * embed(self.decoder, items)).sum(-1) + self.decoder_bias[items]

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        uniq, inverse = torch.unique(users, return_inverse=True)
        return (self.hidden(uniq) @ self.decoder.weight.T + self.decoder_bias)[inverse]


@REC_BACKBONES.register("cdae-pairwise")
class CDAEPairwise(RecBackbone):
    """This project's earlier CDAE (sigmoid, corruption 0.2, no normalisation, pairwise training)."""

    user_tables, item_tables = ("user_node",), ("decoder",)

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
    def from_split(cls, split: RecSplit, **kwargs) -> "CDAEPairwise":
        indptr, row_items = csr_rows(split.train, split.n_users)
        return cls(split.n_users, split.n_items, indptr, row_items, **kwargs)

    def hidden(self, users: torch.Tensor) -> torch.Tensor:
        items, offsets = gather_rows(self.indptr, self.row_items, users)
        weights = None
        if self.training and self.corruption > 0:
            keep = torch.rand(items.shape, device=items.device) >= self.corruption
            weights = keep.float() / (1.0 - self.corruption)
        enc = self.encoder(items, offsets, per_sample_weights=weights)
        return torch.sigmoid(enc + embed(self.user_node, users) + self.hidden_bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        uniq, inverse = torch.unique(users, return_inverse=True)
        h = self.hidden(uniq)[inverse]
        return (h * embed(self.decoder, items)).sum(-1) + self.decoder_bias[items]

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.hidden(users) @ self.decoder.weight.T + self.decoder_bias
