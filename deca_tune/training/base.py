"""What the two training loops share: device choice, the optimiser step, model selection on the
validation metric, early stopping, ``fit()`` and the bookkeeping part of a checkpoint.

Each family's loop (``RecTrainer``, ``ImageTrainer``) subclasses :class:`EpochTrainer` and
implements ``train_epoch``, ``evaluate`` and the model/optimiser parts of ``state_dict``.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

#: checkpointed attributes owned by EpochTrainer
TRACKING_KEYS = ("epoch", "step", "best", "last", "best_state", "bad_epochs", "stopped_early")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a CUDA request without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use device 'cpu' or 'auto'")
    return torch.device(name)


class EpochTrainer:
    """Base of the per-family loops; see the trainer contract in ``docs/architecture.md``."""

    spec: dict[str, Any]
    method: torch.nn.Module
    optimizer: torch.optim.Optimizer
    selection_metric: str

    def _init_tracking(self) -> None:
        self.epoch = 0
        self.step = 0
        self.best: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.best_state: dict[str, Any] | None = None
        self.bad_epochs = 0
        self.stopped_early = False

    @property
    def finished(self) -> bool:
        return self.stopped_early or self.epoch >= int(self.spec["max_epochs"])

    def train_epoch(self) -> dict[str, float]:  # pragma: no cover - implemented by each loop
        raise NotImplementedError

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

    def _tracking_state(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in TRACKING_KEYS}

    def _load_tracking_state(self, state: dict[str, Any]) -> None:
        for key in TRACKING_KEYS:
            setattr(self, key, state.get(key, {} if key == "last" else None))
