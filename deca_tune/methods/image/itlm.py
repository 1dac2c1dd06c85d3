"""``itlm``: iterative trimmed loss minimisation (Shen & Sanghavi, ICML 2019).

Training runs in rounds of ``round_epochs`` epochs. The first round uses the whole training set;
at the start of every later round the current model scores every training example (one
vectorised, un-augmented pass) and the next round trains only on the ``1 - trim_ratio`` fraction
with the smallest cross-entropy loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from deca_tune.methods.registry import IMAGE_METHODS
from deca_tune.methods.image.base import ImageMethod


@IMAGE_METHODS.register("itlm")
class ITLM(ImageMethod):
    defaults = {"trim_ratio": 0.2, "round_epochs": 5}

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.trim_ratio = float(self.spec["trim_ratio"])
        self.round_epochs = int(self.spec["round_epochs"])
        if not 0.0 <= self.trim_ratio < 1.0:
            raise ValueError(f"itlm: trim_ratio must be in [0, 1), got {self.trim_ratio}")
        if self.round_epochs < 1:
            raise ValueError(f"itlm: round_epochs must be >= 1, got {self.round_epochs}")
        self.kept = torch.arange(len(split.train_y_noisy))  # rows trained on this round

    def per_example_loss(self) -> torch.Tensor:
        """Cross-entropy of every training example under the current model (eval mode)."""
        return self.map_batches(lambda x, y: F.cross_entropy(self.f(x), y, reduction="none"),
                                self.split.train_x, self.split.train_y_noisy)

    def on_epoch_start(self, epoch: int) -> None:
        if epoch > 0 and epoch % self.round_epochs == 0:
            losses = self.per_example_loss()
            n_keep = max(1, int(round((1.0 - self.trim_ratio) * len(losses))))
            self.kept = torch.sort(torch.topk(losses, n_keep, largest=False).indices).values

    def train_indices(self) -> torch.Tensor:
        return self.kept

    @torch.no_grad()
    def clean_scores(self, x, y):
        """Negative cross-entropy (ITLM keeps the smallest losses)."""
        return -F.cross_entropy(self.f(x), y, reduction="none")

    def get_extra_state(self):
        return {**super().get_extra_state(), "kept": self.kept.cpu().clone()}

    def set_extra_state(self, state):
        super().set_extra_state(state)
        self.kept = state["kept"].clone()
