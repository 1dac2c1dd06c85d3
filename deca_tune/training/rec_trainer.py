"""THE training loop for recommendation, shared by every method (``deca_tune.methods``).

Per epoch: shuffle the training positives, sample ``neg_ratio`` negatives for each with the
method's sampler, run mini-batches of ``method.batch_loss`` + ``l2 / (2 n_users) * ||theta||^2``
(the DeCA authors' scaling of lambda, over all parameters of the target model) with Adam, then evaluate by full ranking on the validation and test splits. Early stopping watches the
selection metric (noisy validation NDCG@20, or clean validation under the ``paper`` protocol) and
:meth:`RecTrainer.fit` restores the best epoch. Nothing here knows about Ray.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from deca_tune.data import load_rec_dataset
from deca_tune.data.interactions import RecSplit
from deca_tune.data.sampling import SAMPLERS
from deca_tune.methods import REC_METHODS
from deca_tune.methods.base import RecMethod
from deca_tune.metrics.ranking import rank_metrics
from deca_tune.training.base import EpochTrainer, resolve_device
from deca_tune.training.spec import make_spec

SELECTION_K = 20


class RecTrainer(EpochTrainer):
    """Trains ``spec["method"]`` on ``spec["backbone"]`` / ``spec["dataset"]``; see the trainer
    contract in ``docs/architecture.md``."""

    def __init__(self, spec: dict[str, Any], split: RecSplit | None = None) -> None:
        self.spec = make_spec("rec", **{k: v for k, v in spec.items() if k != "task"})
        s = self.spec
        self.device = resolve_device(s["device"])
        self.split = split if split is not None else load_rec_dataset(
            s["dataset"], data_root=s["data_root"], **s.get("dataset_options", {}))
        self.ks = sorted(set(self.split.ks) | {SELECTION_K})
        self.selection_metric = ("valid_clean" if s["protocol"] == "paper" else "valid") + f"/ndcg@{SELECTION_K}"
        selection_split = self.selection_metric.split("/")[0]
        if len(getattr(self.split, selection_split)) == 0:
            raise ValueError(f"data set {self.split.name!r}: the {selection_split} split is empty, so "
                             f"{self.selection_metric} (the selection metric) cannot be computed; "
                             f"use a larger data set or other split options")

        torch.manual_seed(int(s["seed"]))
        self.rng = np.random.default_rng(int(s["seed"]))
        self.method: RecMethod = REC_METHODS.get(s["method"])(s, self.split)
        self.method.prepare(self._pretrain)
        self.method.to(self.device)
        self.sampler = SAMPLERS.get(self.method.sampler)(self.split)
        params = [p for p in self.method.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=float(s["lr"]))
        # the authors' code: lambda0 * 1/2 * sum ||theta||^2 / n_users, added to every batch loss
        self.l2_weight = float(s["l2"]) / (2.0 * self.split.n_users)
        self._test_mask = self.split.test_mask(s["protocol"])

        self._init_tracking()

    # ------------------------------------------------------------------ training
    def _pretrain(self, overrides: dict[str, Any]) -> torch.nn.Module:
        """Train a ``normal`` model with this loop (DeCA(p)'s f', Algorithm 2 lines 1-9)."""
        spec = {**self.spec, "method": "normal", **overrides}
        trainer = RecTrainer(spec, split=self.split)
        trainer.fit()
        return trainer.method.f

    def _l2(self) -> torch.Tensor:
        return sum(p.pow(2).sum() for p in self.method.regularised_parameters())

    def train_epoch(self) -> dict[str, float]:
        """One epoch of training plus evaluation; returns the flat metrics of the contract."""
        start = time.perf_counter()
        s = self.spec
        self.method.train()
        self.method.on_epoch_start(self.epoch)
        train = self.split.train
        order = self.rng.permutation(len(train))
        users_np = train[order, 0]
        pos_np = train[order, 1]
        neg_np = self.sampler.sample(users_np, int(s["neg_ratio"]), self.rng)
        users_all = torch.as_tensor(users_np, device=self.device)
        pos_all = torch.as_tensor(pos_np, device=self.device)
        neg_all = torch.as_tensor(neg_np, device=self.device)
        bs = int(s["batch_size"])
        totals: dict[str, float] = {}
        n_batches = 0
        for lo in range(0, len(train), bs):
            loss, parts = self.method.batch_loss(users_all[lo:lo + bs], pos_all[lo:lo + bs],
                                                 neg_all[lo:lo + bs], self.step)
            if self.l2_weight > 0:
                loss = loss + self.l2_weight * self._l2()
            self._optimizer_step(loss, parts, totals)
            n_batches += 1
        train_seconds = time.perf_counter() - start
        metrics = {k: v / max(n_batches, 1) for k, v in totals.items()}
        self.epoch += 1
        metrics.update(self.evaluate())
        metrics["epoch"] = self.epoch
        metrics["train_seconds"] = train_seconds
        metrics["epoch_seconds"] = time.perf_counter() - start
        self._track_best(metrics)
        return metrics

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Full-ranking metrics on valid, valid_clean, test and test_clean."""
        self.method.eval()
        split = self.split
        out: dict[str, float] = {}
        parts = {
            "valid": (split.valid, split.train),
            "valid_clean": (split.valid_clean, split.train),
            "test": (split.test, self._test_mask),
            "test_clean": (split.test_clean, self._test_mask),
        }
        for name, (relevant, mask) in parts.items():
            if len(relevant) == 0:
                continue
            res = rank_metrics(self.method.score_all, relevant, mask, split.n_users, split.n_items,
                               self.ks, batch_users=int(self.spec["eval_batch_users"]),
                               device=self.device)
            out.update({f"{name}/{k}": v for k, v in res.items()})
        return out

    # ------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.random.get_rng_state(),
            **self._tracking_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._load_tracking_state(state)
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.random.set_rng_state(state["torch_rng"])
