"""``ensemble``: two models of the same backbone with different seeds, each trained normally,
scored by the mean of their probabilities (the paper's Ensemble baseline, section 5.1.3).

The two members, ``f`` (seed ``seed``) and ``twin`` (seed ``seed + 1000``), are trained side by
side in the one loop, each with its own BCE (the losses are summed, so with Adam the updates of
one member do not depend on the other; L2 covers both). ``f`` sees the loop's mini-batches; the
twin draws its own shuffling and negatives from a generator seeded ``seed + 1000`` in the loop's
order (permutation, then negatives), so it follows exactly the trajectory of a ``normal`` run
with seed ``seed + 1000``. Both members are always at the same epoch, so validation, early
stopping and the last-epoch numbers score an ensemble of two equally trained models.

Why not share the batches: with the same shuffling and negatives, two GMFs from different
initialisations (std 0.01) end up nearly identical (score correlation 0.99998 on ML-100K after
20 epochs), and the "ensemble" equals ``normal``. Why not a separately pre-trained twin: it is
selected at its own best epoch and paired with an ``f`` of any age. The twin's generator state is
part of the method's ``state_dict`` (``get_extra_state``), so resuming is exact.

``ensemble_members`` (default 2, the paper's): 1 switches the ensemble off (no twin; ``f``
alone scores) and the method trains and ranks exactly as ``normal`` (``tests/test_nesting.py``).
Each member's loss is ``normal``'s base BCE (:mod:`deca_tune.losses.bce`, in the backbone
recipe's reduction) in ``normal``'s batching: pairs, or on the authors' CDAE the rows batching
(:class:`deca_tune.data.sampling.RowBatches`), the twin drawing its own row batches from its
generator. (Before 2026-12-05 the ensemble trained CDAE on pairs with the mean-scaled loss, so
with one member it was not ``normal``: CDAE's Ensemble rows of earlier runs are that variant.)
CDAE's dropout draws from torch's one stream, so on CDAE the twin's corruption masks are not
those of a ``normal`` run of seed + 1000; its batches and negatives are.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from deca_tune.data.sampling import SAMPLERS, RowBatches
from deca_tune.methods.registry import REC_METHODS
from deca_tune.methods.rec.normal import Normal, bce_loss, pair_index, pair_logits
from deca_tune.models.rec.base import recipe_of
from deca_tune.tasks.base import SpecError

TWIN_SEED_OFFSET = 1000
#: choices of spec ``ensemble_members``: 1 is ``normal`` (the ensemble switched off)
MEMBERS = (1, 2)


@REC_METHODS.register("ensemble")
class Ensemble(Normal):
    """Mean probability of ``f`` and a twin trained alongside it as a ``normal`` run of seed + 1000."""

    defaults = {"ensemble_members": 2}

    @classmethod
    def check_spec(cls, spec) -> None:
        if spec.get("ensemble_members", 2) not in MEMBERS:
            raise SpecError("ensemble_members", f"must be one of {MEMBERS}, got {spec.get('ensemble_members')!r}")

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.check_spec(self.spec)
        self.members = int(self.spec["ensemble_members"])
        self.twin: nn.Module | None = None
        self._reduction = recipe_of(self.f).reduction
        if self.members == 1:
            return
        twin_seed = int(self.spec["seed"]) + TWIN_SEED_OFFSET
        self.twin = self.make_backbone(self.spec["backbone"], seed=twin_seed)
        self._rng = np.random.default_rng(twin_seed)
        self._batch_size = int(self.spec["batch_size"])
        self._ratio = int(self.spec.get("neg_ratio", 1))
        #: the twin's batching: the authors' CDAE trains on rows (as the loop does for f), else pairs
        self._rows = RowBatches(split) if recipe_of(self.f).batching == "rows" else None
        self._sampler = None if self._rows is not None else SAMPLERS.get(self.spec.get("sampler") or self.sampler)(split)
        self._users = self._pos = self._neg = None
        self._row_stream = None
        self._first_step: int | None = None
        self._last_twin: tuple[torch.Tensor, ...] | None = None

    def regularised_parameters(self) -> list[nn.Parameter]:
        if self.twin is None:
            return list(self.f.parameters())
        return list(self.f.parameters()) + list(self.twin.parameters())

    def regularised_rows(self, users, items):
        """``f`` on the loop's batch, the twin on its own (the last :meth:`batch_loss`'s)."""
        rows = [(self.f, users, items)]
        if self._last_twin is not None:
            rows.append((self.twin, *pair_index(*self._last_twin)))
        return rows

    def on_epoch_start(self, epoch: int) -> None:
        if self.twin is None:
            return
        if self._rows is not None:  # drawn batch by batch, as the loop draws f's
            self._row_stream = self._rows.epoch(self._rng, self._batch_size, self._ratio)
            return
        train = self.split.train
        order = self._rng.permutation(len(train))
        self._users, self._pos = train[order, 0], train[order, 1]
        self._neg = self._sampler.sample(self._users, self._ratio, self._rng)
        self._first_step = None

    def _twin_batch(self, step: int, size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        if self._users is None:
            raise RuntimeError("ensemble: on_epoch_start must run before batch_loss")
        if self._first_step is None:
            self._first_step = step
        lo = (step - self._first_step) * self._batch_size
        sl = slice(lo, lo + size)
        return tuple(torch.as_tensor(a[sl], device=device) for a in (self._users, self._pos, self._neg))

    def _twin_rows(self, device: torch.device) -> tuple[torch.Tensor, ...] | None:
        """The twin's next row batch (None once its epoch has no more: its permutation may drop
        an all-empty batch that f's does not)."""
        if self._row_stream is None:
            raise RuntimeError("ensemble: on_epoch_start must run before batch_loss")
        batch = next(self._row_stream, None)
        return None if batch is None else tuple(torch.as_tensor(a, device=device) for a in batch)

    def batch_loss(self, users, pos, neg, step, neg_users=None):
        loss_f = bce_loss(*pair_logits(self.f, users, pos, neg, neg_users), reduction=self._reduction)
        if self.twin is None:
            return loss_f, {"bce": loss_f.detach()}
        if neg_users is None:
            twin = self._twin_batch(step, len(users), users.device)
        else:
            twin = self._twin_rows(users.device)
        if twin is None:
            self._last_twin = None
            return loss_f, {"bce": float(loss_f.detach()), "bce_twin": 0.0}
        self._last_twin = twin
        loss_twin = bce_loss(*pair_logits(self.twin, *twin), reduction=self._reduction)
        return loss_f + loss_twin, {"bce": float(loss_f.detach()), "bce_twin": float(loss_twin.detach())}

    def get_extra_state(self) -> Any:
        return {"rng": None if self.twin is None else self._rng.bit_generator.state}

    def set_extra_state(self, state: Any) -> None:
        if self.twin is not None:
            self._rng.bit_generator.state = state["rng"]

    @torch.no_grad()
    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Mean of the two members' probabilities (higher is better); ``f``'s logits alone with
        one member (as ``normal`` ranks)."""
        if self.twin is None:
            return self.f.score_all(users)
        return 0.5 * (torch.sigmoid(self.f.score_all(users)) + torch.sigmoid(self.twin.score_all(users)))

    @torch.no_grad()
    def clean_probability(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The ensemble's probability of the pair (its own ranking score)."""
        if self.twin is None:
            return torch.sigmoid(self.f(users, items))
        return 0.5 * (torch.sigmoid(self.f(users, items)) + torch.sigmoid(self.twin(users, items)))

    @torch.no_grad()
    def clean_logit(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """log-odds of the mean probability, computed in log space (no saturation)."""
        if self.twin is None:
            return self.f(users, items)
        a, b = self.f(users, items), self.twin(users, items)
        ls = torch.nn.functional.logsigmoid
        return torch.logaddexp(ls(a), ls(b)) - torch.logaddexp(ls(-a), ls(-b))
