"""THE training loop for image classification with noisy labels, shared by every method
(``deca_tune.methods.image``).

Every split lives as ``uint8`` tensors on the training device (moved once in :meth:`setup`);
batches are index slices. Per epoch: the method picks the training rows (all, or ITLM's kept
subset), the loop shuffles them with its own generator, and runs mini-batches (normalised,
augmented for CIFAR, channels-last for convolutional backbones) of ``method.batch_loss`` with
SGD + momentum (or Adam) on ``method.trainable_parameters()`` (optionally under bf16 autocast,
spec ``precision``); the learning rate follows a per-epoch cosine, step (x0.1 at 50% and 75%)
or step60 (x0.2 at 60%) schedule over the method's horizon (``max_epochs``, or an ITLM round: a
method that sets ``restart_schedule`` gets the optimiser state cleared and the schedule restarted). Then it
measures accuracy (inference mode) on the noisy validation split, the clean validation labels,
the clean test split and a fixed probe of training images (``train/accuracy`` on their noisy
labels, ``train_noisy/memorised``), and calls ``method.on_epoch_end``. Model selection / early
stopping watch ``valid/accuracy`` (noisy; ``valid_clean/accuracy`` under the ``paper``
protocol), and :meth:`fit` restores the best epoch. The epoch skeleton is
:class:`EpochTrainer`'s. Nothing here knows about Ray. See the trainer contract in
``docs/architecture.md``.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

from deca_tune.methods.image.base import ImageMethod
from deca_tune.training.base import EpochTrainer


#: spec keys of the optimiser and its schedule (a method may impose them: ``optimizer_overrides``)
OPTIM_KEYS = ("optimizer", "momentum", "weight_decay", "schedule")


class StepAt(torch.optim.lr_scheduler.LRScheduler):
    """lr x ``gamma`` from epoch ``milestone`` on (0-based; ``milestone`` 0: from the start), as
    ITLM's official code does at ``i == int(epoch * 0.6)`` (schedule ``step60``). The milestone is
    in the ``state_dict``, so a resumed run keeps the horizon of its round."""

    def __init__(self, optimizer: torch.optim.Optimizer, milestone: int, gamma: float) -> None:
        self.milestone, self.gamma = int(milestone), float(gamma)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        factor = self.gamma if self.last_epoch >= self.milestone else 1.0
        return [base * factor for base in self.base_lrs]


class ImageTrainer(EpochTrainer):
    """Trains ``spec["method"]`` with ``spec["backbone"]`` on ``spec["dataset"]``."""

    task_name = "image"

    def setup(self) -> None:
        s = self.spec
        if self.selection_metric.startswith("valid_clean/") and int(self.split.clean_known()["valid"]) == 0:
            raise ValueError(f"{s['dataset']}: protocol 'paper' selects on clean validation labels and "
                             "this data set has none; use the default protocol (noisy validation)")
        self.method: ImageMethod = self.task.method_class(s["method"])(s, self.split)
        augment = s["augment"]
        self.method.augment = self.split.augment if augment == "auto" else bool(augment)
        self.method.selection_metric = self.selection_metric
        self.method.to(self.device)
        # every split lives on the training device once; batches are index slices
        sp = self.split
        self._train_x = sp.train_x.to(self.device)
        self._train_y = sp.train_y_noisy.to(self.device)
        self._valid_x = sp.valid_x.to(self.device)
        self._test_x = sp.test_x.to(self.device)
        self.method.data = {"train_x": self._train_x, "train_y": self._train_y,
                            "meta_x": sp.meta_x.to(self.device), "meta_y": sp.meta_y.to(self.device)}
        n_probe = min(int(s["eval_train_rows"]), len(sp.train_y_noisy))
        self._probe = slice(0, n_probe)  # the split's training rows are a random permutation

        params = self.method.trainable_parameters()
        #: the optimiser settings: the spec's, unless the method imposes its own (ITLM's official form)
        self.optim_spec = {k: s[k] for k in OPTIM_KEYS} | self.method.optimizer_overrides()
        o = self.optim_spec
        lr, wd = float(s["lr"]), float(o["weight_decay"])
        if o["optimizer"] == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=lr, momentum=float(o["momentum"]), weight_decay=wd)
        else:
            self.optimizer = torch.optim.Adam(params, lr=lr, weight_decay=wd)
        self.scheduler = self._make_scheduler(self.method.schedule_horizon(0, int(s["max_epochs"])))
        self.generator = torch.Generator().manual_seed(int(s["seed"]))
        self._epoch_lr = self.lr
        self._epoch_rows = 0

    def _make_scheduler(self, epochs: int) -> torch.optim.lr_scheduler.LRScheduler | None:
        """The spec's per-epoch schedule over ``epochs`` epochs, starting at the base lr."""
        schedule = self.optim_spec["schedule"]
        if schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(epochs, 1))
        if schedule == "step":
            return torch.optim.lr_scheduler.MultiStepLR(
                self.optimizer, milestones=[max(1, epochs // 2), max(1, (3 * epochs) // 4)], gamma=0.1)
        if schedule == "step60":
            return StepAt(self.optimizer, milestone=int(epochs * 0.6), gamma=0.2)
        return None

    def _restart_schedule(self) -> None:
        """Clear the optimiser state (momentum, Adam moments), reset every group to its base lr
        and start a fresh schedule over the method's horizon (ITLM's rounds)."""
        self.optimizer.state.clear()
        for group in self.optimizer.param_groups:
            group["lr"] = group.get("initial_lr", group["lr"])
        self.scheduler = self._make_scheduler(self.method.schedule_horizon(self.epoch, int(self.spec["max_epochs"])))

    # ------------------------------------------------------------------ training
    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def batches(self) -> Iterator[torch.Tensor]:
        if self.method.restart_schedule:
            self._restart_schedule()
            self.method.restart_schedule = False
        rows = self.method.train_indices()
        n = len(self._train_y) if rows is None else len(rows)
        order = torch.randperm(n, generator=self.generator)
        if rows is not None:
            order = rows[order]
        order = order.to(self.device)
        self._epoch_lr, self._epoch_rows = self.lr, n
        bs = int(self.spec["batch_size"])
        self._probe_batch = None
        for lo in range(0, n, bs):
            if self._probe_batch is None:  # the epoch's first mini-batch and its step (agreement_probe)
                self._probe_batch = (order[lo:lo + bs], self.step)
            yield order[lo:lo + bs]

    def autocast(self) -> contextlib.AbstractContextManager:
        """``precision: bf16``: bfloat16 autocast of the forward passes (convolutions and matrix
        products in bf16, losses and softmax in fp32; ~1.5x faster ResNet-32 training on a CPU
        with AVX-512 BF16); ``fp32`` (default): nothing."""
        if self.spec["precision"] == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def batch_loss(self, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x = self.method.inputs(self._train_x[idx])
        with self.autocast():
            loss, parts = self.method.batch_loss(x, self._train_y[idx], self.step, self.epoch, self._epoch_lr)
        return loss.float(), parts

    def train_epoch(self) -> dict[str, float]:
        metrics = super().train_epoch()
        self.method.on_epoch_end(self.epoch - 1, metrics)
        return metrics

    def after_epoch(self) -> dict[str, float]:
        probe = self.agreement_probe()  # at the weights the epoch ended with, before the schedule
        if self.scheduler is not None:
            self.scheduler.step()
        return {"lr": self._epoch_lr, "train_rows": self._epoch_rows, **probe}

    def agreement_probe(self) -> dict[str, float]:
        """DeCA(p)'s per-epoch gradient diagnostic (``agreement_gradient``: how much of f's
        gradient the KL to f' gives) on the epoch's first mini-batch, without augmentation, when
        the spec's ``agreement_grad`` is on. Training is unchanged: no ``.grad`` is written, the
        batch-norm statistics are restored, the torch RNG is forked and the augmentation
        generator is not used."""
        probe = self.__dict__.pop("_probe_batch", None)
        fn = getattr(self.method, "agreement_gradient", None)
        if probe is None or fn is None or not self.method.spec.get("agreement_grad", False):
            return {}
        idx, step = probe
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            x = self.method.inputs(self._train_x[idx], augment=False)
            with self.autocast():
                return fn(x, self._train_y[idx], step, self.epoch)

    # ---------------------------------------------------------------- evaluation
    def _predict_labels(self, x: torch.Tensor) -> torch.Tensor:
        dummy = torch.zeros(len(x), dtype=torch.int64)
        with self.autocast():
            return self.method.map_batches(lambda xb, _y: self.method.predict(xb).argmax(1), x, dummy,
                                           batch_size=int(self.spec["eval_batch_size"]))

    def evaluate(self) -> dict[str, float]:
        """Accuracy on the noisy validation labels, the clean validation labels, the clean test
        set, and on the first ``eval_train_rows`` training images: against their noisy labels
        (``train/accuracy``) and, among those whose label was changed, the share predicted as
        the wrong label (``train_noisy/memorised``: memorisation; analysis only).

        With labels given as noisy (``split.labels == "given"``) a clean metric is computed over
        the images whose clean label is known and left out when none is; ``test/accuracy`` is
        the accuracy on the test labels as given when they are not known to be clean."""
        sp = self.split
        with torch.inference_mode():
            valid_pred = self._predict_labels(self._valid_x)
            test_pred = self._predict_labels(self._test_x)
            if sp.labels == "given":
                out = {"valid/accuracy": float((valid_pred == sp.valid_y).float().mean())}
                for key, pred, clean in (("valid_clean/accuracy", valid_pred, sp.valid_y_clean),
                                         ("test_clean/accuracy", test_pred, sp.test_y)):
                    known = clean >= 0
                    if bool(known.any()):
                        out[key] = float((pred[known] == clean[known]).float().mean())
                if sp.test_y_noisy is not None:
                    out["test/accuracy"] = float((test_pred == sp.test_y_noisy).float().mean())
            else:
                out = {
                    "valid/accuracy": float((valid_pred == sp.valid_y).float().mean()),
                    "valid_clean/accuracy": float((valid_pred == sp.valid_y_clean).float().mean()),
                    "test_clean/accuracy": float((test_pred == sp.test_y).float().mean()),
                }
            if self._probe.stop > 0:
                pred = self._predict_labels(self._train_x[self._probe])
                noisy = sp.train_y_noisy[self._probe]
                changed = sp.noisy_mask[self._probe]
                out["train/accuracy"] = float((pred == noisy).float().mean())
                if bool(changed.any()):
                    out["train_noisy/memorised"] = float((pred[changed] == noisy[changed]).float().mean())
        return out

    def train_clean_scores(self) -> torch.Tensor:
        """The method's per-example clean score for every training row (compare with
        ``split.noisy_mask`` for noise detection; never used in training)."""
        return self.method.map_batches(self.method.clean_scores, self._train_x, self._train_y,
                                       batch_size=int(self.spec["eval_batch_size"]))

    # ------------------------------------------------------------- checkpointing
    def extra_state(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "generator": self.generator.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        # the scheduler's state holds its horizon (T_max / milestones), also after a restart
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
