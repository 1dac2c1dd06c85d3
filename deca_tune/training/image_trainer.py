"""THE training loop for image classification with noisy labels, shared by every method
(``deca_tune.methods.image``).

Per epoch: the method picks the training rows (all, or ITLM's kept subset), the loop shuffles
them with its own generator, and runs mini-batches (normalised, augmented for CIFAR) of
``method.batch_loss`` with SGD + momentum (or Adam) on ``method.trainable_parameters()``; the
learning rate follows a per-epoch cosine or step (x0.1 at 50% and 75%) schedule. Then it
measures accuracy on the noisy validation split, the clean validation labels and the clean test
split. Model selection / early stopping watch ``valid/accuracy`` (noisy; ``valid_clean/accuracy``
under the ``paper`` protocol), and :meth:`ImageTrainer.fit` restores the best epoch.
Nothing here knows about Ray. See the trainer contract in ``docs/architecture.md``.
"""
from __future__ import annotations

import copy
import time
from typing import Any

import torch

from deca_tune.data.images import ImageSplit, build_image_split
from deca_tune.methods import IMAGE_METHODS
from deca_tune.methods.image.base import ImageMethod
from deca_tune.models.vision import VisionNet
from deca_tune.training.base import EpochTrainer, resolve_device
from deca_tune.training.spec import make_spec

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "step", "none")


def split_from_spec(spec: dict[str, Any]) -> ImageSplit:
    """The (cached) noisy split a spec describes."""
    data_seed = spec["seed"] if spec.get("data_seed") is None else spec["data_seed"]
    return build_image_split(
        spec["dataset"], data_root=spec.get("data_root"), cache_dir=spec.get("cache_dir"),
        seed=int(data_seed), noise_rate=float(spec["noise_rate"]), noise_type=spec["noise_type"],
        valid_size=spec.get("valid_size"), meta_per_class=int(spec["meta_per_class"]),
        train_size=spec.get("train_size"), download=bool(spec["download"]),
        verify=bool(spec["verify_checksums"]), options=spec.get("dataset_options") or {})


class ImageTrainer(EpochTrainer):
    """Trains ``spec["method"]`` with ``spec["backbone"]`` on ``spec["dataset"]``.

    ``split`` may be given to reuse an already built split (DeCA(p)'s pre-training, tests).
    """

    def __init__(self, spec: dict[str, Any], split: ImageSplit | None = None) -> None:
        if spec.get("task", "image") != "image":
            raise ValueError(f"ImageTrainer got a spec with task {spec['task']!r}; expected 'image'")
        self.spec = make_spec("image", **{k: v for k, v in spec.items() if k != "task"})
        s = self.spec
        for key, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
            if s[key] not in choices:
                raise ValueError(f"spec key {key!r}: unknown value {s[key]!r}; choose one of: {', '.join(choices)}")
        self.device = resolve_device(str(s["device"]))
        self.data_seed = int(s["seed"] if s["data_seed"] is None else s["data_seed"])
        self.split = split if split is not None else split_from_spec(s)
        self.selection_metric = ("valid_clean" if s["protocol"] == "paper" else "valid") + "/accuracy"
        if s["protocol"] not in ("default", "paper"):
            raise ValueError(f"spec key 'protocol': unknown value {s['protocol']!r}; choose one of: default, paper")

        self.method: ImageMethod = IMAGE_METHODS.get(s["method"])(s, self.split)
        augment = s["augment"]
        self.method.augment = self.split.augment if augment == "auto" else bool(augment)
        self.method.to(self.device)
        sp = self.split
        self._train_x = sp.train_x.to(self.device)
        self._train_y = sp.train_y_noisy.to(self.device)

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

        self._init_tracking()
        self.prepared = False
        self.pretrain_seconds = 0.0

    # ------------------------------------------------------------------ training
    def _pretrain(self, overrides: dict[str, Any]) -> VisionNet:
        """Train a ``normal`` model with this loop on the same split (Algorithm 3, lines 1-6)."""
        spec = {**self.spec, "method": "normal", "data_seed": self.data_seed, **overrides}
        trainer = ImageTrainer(spec, split=self.split)
        trainer.fit()
        return trainer.method.f

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def train_epoch(self) -> dict[str, float]:
        """One epoch of training plus evaluation; returns the flat metrics of the contract."""
        if not self.prepared:
            t0 = time.perf_counter()
            self.method.prepare(self._pretrain)
            self.pretrain_seconds = time.perf_counter() - t0
            self.prepared = True
        start = time.perf_counter()
        self.method.train()
        self.method.on_epoch_start(self.epoch)
        rows = self.method.train_indices()
        n = len(self._train_y) if rows is None else len(rows)
        order = torch.randperm(n, generator=self.generator)
        if rows is not None:
            order = rows[order]
        order = order.to(self.device)
        bs = int(self.spec["batch_size"])
        lr = self.lr
        totals: dict[str, float] = {}
        n_batches = 0
        for lo in range(0, n, bs):
            idx = order[lo:lo + bs]
            x = self.method.inputs(self._train_x[idx])
            loss, parts = self.method.batch_loss(x, self._train_y[idx], self.step, self.epoch, lr)
            self._optimizer_step(loss, parts, totals)
            n_batches += 1
        if self.scheduler is not None:
            self.scheduler.step()
        train_seconds = time.perf_counter() - start
        metrics = {k: v / max(n_batches, 1) for k, v in totals.items()}
        self.epoch += 1
        metrics.update(self.evaluate())
        metrics.update({"epoch": self.epoch, "lr": lr, "train_rows": n, "train_seconds": train_seconds,
                        "epoch_seconds": time.perf_counter() - start,
                        "pretrain_seconds": self.pretrain_seconds})
        self._track_best(metrics)
        return metrics

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
    def state_dict(self) -> dict[str, Any]:
        """A deep copy of everything needed to resume bit-for-bit."""
        state = {
            "spec": self.spec,
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "generator": self.generator.get_state(),
            "torch_rng": torch.random.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "prepared": self.prepared,
            "pretrain_seconds": self.pretrain_seconds,
            **self._tracking_state(),
        }
        return copy.deepcopy(state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.random.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.prepared = state["prepared"]
        self.pretrain_seconds = state["pretrain_seconds"]
        self._load_tracking_state(state)
