"""The method interface for image classification: what the single image loop asks of a method.

A method owns its models (the target ``f`` and any auxiliaries such as DeCA(p)'s ``h`` and ``f'``
or MW-Net's weight net), computes the loss of one mini-batch and gives per-example "clean"
scores. The loop (``deca_tune.training.image_trainer``) owns everything else: batching,
normalisation/augmentation, the optimiser of :meth:`ImageMethod.trainable_parameters`, the
learning-rate schedule, evaluation and checkpoints.

Randomness a method draws itself (MW-Net's meta batches) comes from ``self.generator``, which is
saved in the method's ``state_dict`` so resuming is bit-exact.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from deca_tune.data.image.transforms import augment_batch, normalise
from deca_tune.methods.base import Method
from deca_tune.models.image import apply_memory_format, is_channels_last


class ImageMethod(Method):
    """Base class: plain cross-entropy on the noisy labels. Subclasses override the hooks."""

    task = "image"

    def __init__(self, spec: dict[str, Any], split: Any) -> None:
        super().__init__(spec, split)
        self.n_classes = split.n_classes
        #: batches are handed to the models channels-last when the backbone is (spec ``memory_format``)
        self.channels_last = is_channels_last(self.f)
        self.generator = torch.Generator().manual_seed(int(spec["seed"]) + 7919)
        #: whether the trainer should augment batches (crop + flip) -- set by the trainer
        self.augment = False
        #: the loop's model-selection metric (set by the trainer; ITLM's per-round checkpoint)
        self.selection_metric = "valid/accuracy"
        #: the split's tensors on the training device, filled by the loop (``train_x``, ``train_y``,
        #: ``meta_x``, ``meta_y``); :meth:`tensor` falls back to the split's CPU copies
        self.data: dict[str, torch.Tensor] = {}
        #: a method sets this to ask the loop to clear the optimiser state and restart the
        #: learning-rate schedule before the next batch (ITLM's rounds); the loop resets it
        self.restart_schedule = False

    def tensor(self, name: str) -> torch.Tensor:
        """``train_x``, ``train_y`` (noisy), ``meta_x`` or ``meta_y`` on the training device when the
        loop put them there (once, in its setup), else the split's own tensor."""
        if name in self.data:
            return self.data[name]
        return {"train_x": self.split.train_x, "train_y": self.split.train_y_noisy,
                "meta_x": self.split.meta_x, "meta_y": self.split.meta_y}[name]

    def make_backbone(self, name: str, seed: int, **kwargs: Any) -> torch.nn.Module:
        """A fresh backbone in the memory format of the spec (``memory_format``: channels-last for
        convolutional networks by default)."""
        model = super().make_backbone(name, seed, **kwargs)
        return apply_memory_format(model, str(self.spec.get("memory_format", "auto")))

    @property
    def device(self) -> torch.device:
        return next(self.f.parameters()).device

    # --------------------------------------------------------------------- hooks
    def train_indices(self) -> torch.Tensor | None:
        """Rows of the training set to draw this epoch's batches from (``None`` = all)."""
        return None

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Called by the loop after epoch ``epoch`` (0-based) was trained and evaluated."""

    def optimizer_overrides(self) -> dict[str, Any]:
        """Optimiser settings this method imposes over the spec's (keys ``optimizer``,
        ``momentum``, ``weight_decay``, ``schedule``); ``{}``: the spec's (every method but ITLM's
        official form)."""
        return {}

    def schedule_horizon(self, epoch: int, max_epochs: int) -> int:
        """Epochs the learning-rate schedule spans when it (re)starts at ``epoch``."""
        return max_epochs

    def batch_loss(self, x: torch.Tensor, y: torch.Tensor, step: int, epoch: int,
                   lr: float) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one mini-batch of normalised images ``x`` and noisy labels ``y``.

        ``step``: global step (0-based), ``epoch``: 0-based, ``lr``: the classifier's current
        learning rate. Returns the scalar loss and named components to log.
        """
        loss = F.cross_entropy(self.f(x), y)
        return loss, {"ce": float(loss.detach())}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, C]`` of the target model."""
        return self.f(x)

    @torch.no_grad()
    def clean_scores(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example score that the observed label ``y`` is clean (higher = cleaner).

        Default: ``f``'s probability of the observed label.
        """
        return F.softmax(self.f(x), dim=1).gather(1, y[:, None]).squeeze(1)

    # ----------------------------------------------------------------- utilities
    def inputs(self, x_uint8: torch.Tensor, augment: bool | None = None) -> torch.Tensor:
        """Normalise (and augment, with ``self.generator``) a ``uint8`` batch."""
        if self.augment if augment is None else augment:
            x_uint8 = augment_batch(x_uint8, self.generator)
        x = normalise(x_uint8, self.split.mean, self.split.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @torch.no_grad()
    def map_batches(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
                    y: torch.Tensor, batch_size: int | None = None, augment: bool = False) -> torch.Tensor:
        """``fn(normalised x, y)`` over a whole ``uint8`` set in eval mode, concatenated (on CPU);
        ``augment``: the training transform (crop + flip from ``self.generator``) first."""
        batch_size = int(batch_size or self.spec.get("eval_batch_size", 250))
        was_training = self.training
        self.eval()
        try:
            out = []
            for lo in range(0, len(x), batch_size):
                xb = self.inputs(x[lo:lo + batch_size].to(self.device), augment=augment)
                out.append(fn(xb, y[lo:lo + batch_size].to(self.device)).cpu())
            return torch.cat(out) if out else torch.empty(0)
        finally:
            self.train(was_training)

    def get_extra_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
