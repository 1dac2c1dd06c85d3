"""The epoch skeleton both training loops share (a template method): :class:`EpochTrainer`.

``EpochTrainer`` owns what does not depend on the family: the spec (defaults and validation
through the task), the split (``deca_tune.data.load_split``), the method, the device, the
selection metric of the protocol, the one-time ``prepare`` with the pre-trained prior and its
cache, the optimiser step, the epoch loop (:meth:`train_epoch`), best/last epoch tracking, early
stopping, :meth:`fit` and the common part of a checkpoint. A family's loop
(``RecTrainer``, ``ImageTrainer``) supplies the pieces: :meth:`setup` (optimiser, sampler,
schedule), :meth:`batches` and :meth:`batch_loss` (one epoch of mini-batches),
:meth:`evaluate`, and its own checkpoint entries (:meth:`extra_state`).
"""
from __future__ import annotations

import copy
import time
from typing import Any, ClassVar, Iterator

import torch

from deca_tune.data.loading import load_split
from deca_tune.tasks import Task, get_task
from deca_tune.training.pretrain import load_or_pretrain, pretrain_spec

#: checkpointed attributes owned by EpochTrainer
TRACKING_KEYS = ("epoch", "step", "best", "last", "best_state", "bad_epochs", "stopped_early",
                 "prepared", "pretrain_info")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a CUDA request without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use device 'cpu' or 'auto'")
    return torch.device(name)


class EpochTrainer:
    """Base of the per-family loops; see the trainer contract in ``docs/architecture.md``.

    ``split`` may be given to reuse an already built split (the prior's pre-training, tests).
    """

    #: the family of this loop (``deca_tune.tasks``)
    task_name: ClassVar[str]
    optimizer: torch.optim.Optimizer

    def __init__(self, spec: dict[str, Any], split: Any = None) -> None:
        from deca_tune.registry import import_plugins

        import_plugins(spec.get("plugins"))
        self.task: Task = get_task(self.task_name)
        self.spec = self.task.make_spec(**spec)
        self.task.validate_spec(self.spec)
        s = self.spec
        self.device = resolve_device(str(s["device"]))
        self.split = split if split is not None else load_split(self.task.name, s)
        self.selection_metric = self.task.selection_metric(s["protocol"])
        self.epoch = 0
        self.step = 0
        self.best: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.best_state: dict[str, Any] | None = None
        self.bad_epochs = 0
        self.stopped_early = False
        self.prepared = False
        self.pretrain_info: dict[str, Any] = {}
        self.setup()

    # ----------------------------------------------------------- what a loop supplies
    def setup(self) -> None:  # pragma: no cover - implemented by each loop
        """Build ``self.method`` (on ``self.device``), ``self.optimizer`` and whatever else the loop needs."""
        raise NotImplementedError

    def batches(self) -> Iterator[Any]:  # pragma: no cover
        """This epoch's mini-batches (the method's ``on_epoch_start`` has run)."""
        raise NotImplementedError

    def batch_loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:  # pragma: no cover
        """The loss to minimise on ``batch`` and its named parts."""
        raise NotImplementedError

    def after_epoch(self) -> dict[str, float]:
        """Called after the epoch's last step (learning-rate schedule); returns extra metrics."""
        return {}

    def evaluate(self) -> dict[str, float]:  # pragma: no cover
        """Metrics of the current weights on the validation and test splits."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """The loop's own checkpoint entries (beyond the method, optimiser and tracking)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` saved."""

    # ------------------------------------------------------------------- the skeleton
    @property
    def finished(self) -> bool:
        return self.stopped_early or self.epoch >= int(self.spec["max_epochs"])

    def prepare(self) -> None:
        """Run the method's one-time preparation (pre-training its prior) unless done or restored."""
        if not self.prepared:
            self.method.prepare(self.pretrain)
            self.prepared = True

    def pretrain(self, overrides: dict[str, Any]) -> torch.nn.Module:
        """The target model of a ``normal`` run of this loop with ``overrides`` on the same split,
        from the cache when that run was trained before (``deca_tune.training.pretrain``)."""
        spec = pretrain_spec(self.spec, overrides)

        def train(run_spec: dict[str, Any]) -> torch.nn.Module:
            trainer = type(self)(run_spec, split=self.split)
            trainer.fit()
            return trainer.method.f

        def build(seed: int) -> torch.nn.Module:
            return self.method.make_backbone(spec["backbone"], seed=seed)

        model, info = load_or_pretrain(spec, self.split, build, train)
        self.pretrain_info = {**info, "spec": {k: spec[k] for k in ("seed", *overrides)}}
        return model

    def train_epoch(self) -> dict[str, float]:
        """One epoch of training plus evaluation; returns the flat metrics of the contract."""
        self.prepare()
        start = time.perf_counter()
        self.method.train()
        self.method.on_epoch_start(self.epoch)
        totals: dict[str, float] = {}
        n_batches = 0
        for batch in self.batches():
            loss, parts = self.batch_loss(batch)
            self._optimizer_step(loss, parts, totals)
            n_batches += 1
        extra = self.after_epoch()
        train_seconds = time.perf_counter() - start
        metrics = {k: v / max(n_batches, 1) for k, v in totals.items()}
        self.epoch += 1
        metrics.update(self.evaluate())
        metrics.update(extra)
        metrics.update({"epoch": self.epoch, "train_seconds": train_seconds,
                        "epoch_seconds": time.perf_counter() - start,
                        "pretrain_seconds": float(self.pretrain_info.get("seconds", 0.0))})
        self._track_best(metrics)
        return metrics

    def _optimizer_step(self, loss: torch.Tensor, parts: dict[str, Any], totals: dict[str, float]) -> None:
        """Back-propagate one batch loss and add it and its named parts to the epoch ``totals``."""
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at epoch {self.epoch}, step {self.step}: {parts}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        totals["loss"] = totals.get("loss", 0.0) + float(loss.detach())
        for key, val in parts.items():
            name = key if "/" in key else f"loss/{key}"
            totals[name] = totals.get(name, 0.0) + float(val)

    def _track_best(self, metrics: dict[str, float]) -> None:
        """Remember the last epoch, the best one by the selection metric, and early stopping."""
        self.last = metrics
        value = metrics[self.selection_metric]
        if not self.best or value > self.best[self.selection_metric]:
            self.best = dict(metrics)
            self.best_state = copy.deepcopy(self.method.state_dict())
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
            patience = int(self.spec["patience"])
            if patience > 0 and self.bad_epochs >= patience:
                self.stopped_early = True

    def fit(self) -> dict[str, float]:
        """Train until finished; restore the best epoch's weights and return its metrics, or,
        with ``restore_best: False`` (the DeCA authors' runs keep the last epoch), the last's."""
        while not self.finished:
            self.train_epoch()
        if not self.spec.get("restore_best", True):
            return self.last
        if self.best_state is not None:
            self.method.load_state_dict(self.best_state)
        return self.best

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """A deep copy of everything needed to resume bit-for-bit."""
        state = {
            "spec": self.spec,
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.random.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            **{key: getattr(self, key) for key in TRACKING_KEYS},
            **self.extra_state(),
        }
        return copy.deepcopy(state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.random.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        for key in TRACKING_KEYS:
            setattr(self, key, state.get(key, {} if key in ("last", "pretrain_info") else None))
        self.prepared = bool(state.get("prepared", True))
        self.load_extra_state(state)
