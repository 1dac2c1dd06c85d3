"""THE training loop for recommendation, shared by every method (``deca_tune.methods``).

Per epoch: shuffle the training positives, sample ``neg_ratio`` negatives for each with the
method's sampler, run mini-batches of ``method.batch_loss`` + ``l2 / (2 n_users) * ||theta||^2``
(the DeCA authors' scaling of lambda, over the target model's parameters) with Adam, then
evaluate by full ranking on the validation and test splits. Early stopping watches the selection
metric (noisy validation NDCG@20, or clean validation under the ``paper`` protocol) and
:meth:`fit` restores the best epoch. The epoch skeleton is :class:`EpochTrainer`'s. Nothing here
knows about Ray.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

from deca_tune.data.sampling import SAMPLERS
from deca_tune.methods.rec.base import RecMethod
from deca_tune.metrics.ranking import rank_metrics
from deca_tune.tasks.rec import SELECTION_K
from deca_tune.training.base import EpochTrainer

#: the splits evaluated every epoch and the pairs masked when ranking for each
EVAL_SPLITS = ("valid", "valid_clean", "test", "test_clean")


class RecTrainer(EpochTrainer):
    """Trains ``spec["method"]`` on ``spec["backbone"]`` / ``spec["dataset"]``; see the trainer
    contract in ``docs/architecture.md``."""

    task_name = "rec"

    def setup(self) -> None:
        s = self.spec
        self.ks = sorted(set(self.split.ks) | {SELECTION_K})
        selection_split = self.selection_metric.split("/")[0]
        if len(getattr(self.split, selection_split)) == 0:
            raise ValueError(f"data set {self.split.name!r}: the {selection_split} split is empty, so "
                             f"{self.selection_metric} (the selection metric) cannot be computed; "
                             f"use a larger data set or other split options")
        torch.manual_seed(int(s["seed"]))
        self.rng = np.random.default_rng(int(s["seed"]))
        self.method: RecMethod = self.task.method_class(s["method"])(s, self.split)
        self.method.to(self.device)
        self.sampler = SAMPLERS.get(s["sampler"] or self.method.sampler)(self.split)
        self.optimizer = torch.optim.Adam(self.method.trainable_parameters(), lr=float(s["lr"]))
        # the authors' code: lambda0 * 1/2 * sum ||theta||^2 / n_users, added to every batch loss
        self.l2_weight = float(s["l2"]) / (2.0 * self.split.n_users)
        #: pairs never ranked when scoring the test splits (the protocol's mask)
        self.test_mask = self.split.test_mask(s["protocol"])
        self._eval_sets = self.split.evaluation_sets(s["protocol"])

    # ------------------------------------------------------------------ training
    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        train = self.split.train
        order = self.rng.permutation(len(train))
        users_np = train[order, 0]
        neg_np = self.sampler.sample(users_np, int(self.spec["neg_ratio"]), self.rng)
        users = torch.as_tensor(users_np, device=self.device)
        pos = torch.as_tensor(train[order, 1], device=self.device)
        neg = torch.as_tensor(neg_np, device=self.device)
        bs = int(self.spec["batch_size"])
        for lo in range(0, len(train), bs):
            yield users[lo:lo + bs], pos[lo:lo + bs], neg[lo:lo + bs]

    def batch_loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
                   ) -> tuple[torch.Tensor, dict[str, float]]:
        loss, parts = self.method.batch_loss(*batch, self.step)
        if self.l2_weight > 0:
            loss = loss + self.l2_weight * sum(p.pow(2).sum() for p in self.method.regularised_parameters())
        return loss, parts

    # ---------------------------------------------------------------- evaluation
    def eval_masks(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{split: (relevant pairs, masked pairs)}`` of every non-empty evaluation split under
        the spec's protocol (``RecSplit.evaluation_sets``: the default protocol never counts a
        validation pair at test time)."""
        return {name: self._eval_sets[name] for name in EVAL_SPLITS if len(self._eval_sets[name][0])}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Full-ranking metrics on valid, valid_clean, test and test_clean."""
        self.method.eval()
        split = self.split
        out: dict[str, float] = {}
        for name, (relevant, mask) in self.eval_masks().items():
            res = rank_metrics(self.method.score_all, relevant, mask, split.n_users, split.n_items,
                               self.ks, batch_users=int(self.spec["eval_batch_users"]),
                               device=self.device)
            out.update({f"{name}/{k}": v for k, v in res.items()})
        return out

    # ------------------------------------------------------------- checkpointing
    def extra_state(self) -> dict[str, Any]:
        return {"numpy_rng": self.rng.bit_generator.state}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["numpy_rng"]
