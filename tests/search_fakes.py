"""A tiny fake trainer honouring the trainer contract (docs/architecture.md), for search tests.

Ray workers import it as ``tests.search_fakes`` (the repository root is on their path); a spec
selects it with ``trainer_factory: "tests.search_fakes:FakeTrainer"``. Its numbers are a
deterministic function of the spec, so tests can predict which configuration wins.

Quality peaks at lr = 1e-3 and l2 = 1 (the searched rec/image parameters). Spec knobs:
``sleep`` (seconds per epoch),
``fail_at_epoch`` (raise when that epoch starts), ``nan_at_epoch`` (report a NaN loss),
``fail_once_file`` (with ``fail_at_epoch``: fail only if that file does not exist yet, then
create it, to test retries from a checkpoint), ``fail_if_l2_above`` (raise at epoch 2 when
l2 exceeds it), ``nan_if_l2_below`` (NaN loss at epoch 2 when l2 is below it). Every epoch
reports ``restored_from``: the epoch of the checkpoint it resumed from (0 = fresh start).
With ``load_data: true`` it loads its data set through ``load_dataset`` (as the real
trainer does) and reports ``data_id``, the id of the split object, to show the per-process cache.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any


class FakeTrainer:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = dict(spec)
        self.epoch = 0
        self.best: dict[str, float] = {}
        self.protocol = spec.get("protocol", "default")
        self.selection_metric = ("valid_clean" if self.protocol == "paper" else "valid") + "/ndcg@20"
        self.max_epochs = int(spec.get("max_epochs", 3))
        self.restored_from: int | None = None
        self.data_id = 0
        if spec.get("load_data"):
            from deca_tune.data import load_dataset

            split = load_dataset("rec", spec["dataset"], data_root=spec.get("data_root"),
                                     **spec.get("dataset_options", {}))
            self.data_id = id(split)

    @property
    def finished(self) -> bool:
        return self.epoch >= self.max_epochs

    def quality(self) -> float:
        lr, l2 = float(self.spec.get("lr", 1e-3)), float(self.spec.get("l2", 1.0))
        return (0.5 - 0.05 * (math.log10(lr) + 3) ** 2 - 0.01 * abs(math.log10(l2))
                + 0.001 * int(self.spec.get("seed", 0)))

    def train_epoch(self) -> dict[str, float]:
        start = time.perf_counter()
        next_epoch = self.epoch + 1
        l2 = float(self.spec.get("l2", 1.0))
        if next_epoch == 2 and l2 > float(self.spec.get("fail_if_l2_above", math.inf)):
            raise RuntimeError(f"fake failure: l2={l2} is too large")
        if int(self.spec.get("fail_at_epoch", 0)) == next_epoch:
            marker = self.spec.get("fail_once_file")
            if not marker or not os.path.exists(marker):
                if marker:
                    open(marker, "w").close()
                raise RuntimeError(f"fake failure at epoch {next_epoch}")
        time.sleep(float(self.spec.get("sleep", 0.0)))
        self.epoch = next_epoch
        ramp = 1.0 - math.exp(-self.epoch / 2.0)
        q = self.quality() * ramp
        metrics = {
            "epoch": self.epoch,
            "loss": 1.0 - q,
            "loss/bce": 1.0 - q,
            "valid/ndcg@20": q,
            "valid_clean/ndcg@20": q * 1.1,
            "test/ndcg@20": q * 0.9,
            "test_clean/ndcg@20": q * 0.8,
            "test_clean/recall@20": q * 1.5,
        }
        if str(self.spec.get("method", "")).startswith("deca"):
            metrics.update({"deca/h_mean": 0.9, "deca/h_prime_mean": 0.1, "deca/kl": 0.01 * self.epoch})
        if int(self.spec.get("nan_at_epoch", 0)) == self.epoch or (
                self.epoch == 2 and l2 < float(self.spec.get("nan_if_l2_below", -math.inf))):
            metrics["loss"] = float("nan")
        metrics["restored_from"] = self.restored_from or 0
        metrics["data_id"] = self.data_id
        metrics["epoch_seconds"] = time.perf_counter() - start
        if not self.best or metrics[self.selection_metric] > self.best[self.selection_metric]:
            self.best = dict(metrics)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = state["epoch"]
        self.best = state["best"]
        self.restored_from = self.epoch

    def fit(self) -> dict[str, float]:
        while not self.finished:
            self.train_epoch()
        return self.best
