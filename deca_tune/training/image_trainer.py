"""THE training loop for image classification with noisy labels, shared by every method
(``deca_tune.methods.image``).

Per epoch: the method picks the training rows (all, or ITLM's kept subset), the loop shuffles
them with its own generator, and runs mini-batches (normalised, augmented for CIFAR) of
``method.batch_loss`` with SGD + momentum (or Adam) on ``method.trainable_parameters()``; the
learning rate follows a per-epoch cosine or step (x0.1 at 50% and 75%) schedule. Then it
measures accuracy on the noisy validation split, the clean validation labels and the clean test
split. Model selection / early stopping watch ``valid/accuracy`` (noisy; ``valid_clean/accuracy``
under the ``paper`` protocol), and :meth:`fit` restores the best epoch. The epoch skeleton is
:class:`EpochTrainer`'s. Nothing here knows about Ray. See the trainer contract in
``docs/architecture.md``.
"""
from __future__ import annotations

from typing import Any, Iterator

import torch

from deca_tune.methods.image.base import ImageMethod
from deca_tune.training.base import EpochTrainer


class ImageTrainer(EpochTrainer):
    """Trains ``spec["method"]`` with ``spec["backbone"]`` on ``spec["dataset"]``."""

    task_name = "image"

    def setup(self) -> None:
        s = self.spec
        self.method: ImageMethod = self.task.method_class(s["method"])(s, self.split)
        augment = s["augment"]
        self.method.augment = self.split.augment if augment == "auto" else bool(augment)
        self.method.to(self.device)
        self._train_x = self.split.train_x.to(self.device)
        self._train_y = self.split.train_y_noisy.to(self.device)

        params = self.method.trainable_parameters()
        lr, wd = float(s["lr"]), float(s["weight_decay"])
        if s["optimizer"] == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=lr, momentum=float(s["momentum"]), weight_decay=wd)
        else:
            self.optimizer = torch.optim.Adam(params, lr=lr, weight_decay=wd)
        epochs = int(s["max_epochs"])
        if s["schedule"] == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(epochs, 1))
        elif s["schedule"] == "step":
            self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
                self.optimizer, milestones=[max(1, epochs // 2), max(1, (3 * epochs) // 4)], gamma=0.1)
        else:
            self.scheduler = None
        self.generator = torch.Generator().manual_seed(int(s["seed"]))
        self._epoch_lr = self.lr
        self._epoch_rows = 0

    # ------------------------------------------------------------------ training
    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def batches(self) -> Iterator[torch.Tensor]:
        rows = self.method.train_indices()
        n = len(self._train_y) if rows is None else len(rows)
        order = torch.randperm(n, generator=self.generator)
        if rows is not None:
            order = rows[order]
        order = order.to(self.device)
        self._epoch_lr, self._epoch_rows = self.lr, n
        bs = int(self.spec["batch_size"])
        for lo in range(0, n, bs):
            yield order[lo:lo + bs]

    def batch_loss(self, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x = self.method.inputs(self._train_x[idx])
        return self.method.batch_loss(x, self._train_y[idx], self.step, self.epoch, self._epoch_lr)

    def after_epoch(self) -> dict[str, float]:
        if self.scheduler is not None:
            self.scheduler.step()
        return {"lr": self._epoch_lr, "train_rows": self._epoch_rows}

    # ---------------------------------------------------------------- evaluation
    def _predict_labels(self, x: torch.Tensor) -> torch.Tensor:
        dummy = torch.zeros(len(x), dtype=torch.int64)
        return self.method.map_batches(lambda xb, _y: self.method.predict(xb).argmax(1), x, dummy,
                                       batch_size=int(self.spec["eval_batch_size"]))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Accuracy on the noisy validation labels, the clean validation labels, the clean test set."""
        sp = self.split
        valid_pred = self._predict_labels(sp.valid_x)
        test_pred = self._predict_labels(sp.test_x)
        return {
            "valid/accuracy": float((valid_pred == sp.valid_y).float().mean()),
            "valid_clean/accuracy": float((valid_pred == sp.valid_y_clean).float().mean()),
            "test_clean/accuracy": float((test_pred == sp.test_y).float().mean()),
        }

    def train_clean_scores(self) -> torch.Tensor:
        """The method's per-example clean score for every training row (compare with
        ``split.noisy_mask`` for noise detection; never used in training)."""
        return self.method.map_batches(self.method.clean_scores, self.split.train_x, self.split.train_y_noisy,
                                       batch_size=int(self.spec["eval_batch_size"]))

    # ------------------------------------------------------------- checkpointing
    def extra_state(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "generator": self.generator.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
