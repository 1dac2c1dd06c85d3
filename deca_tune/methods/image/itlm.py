"""``itlm``: iterative trimmed loss minimisation (Shen & Sanghavi, ICML 2019).

Training runs in rounds of ``round_epochs`` epochs (the last round takes what is left of
``max_epochs``). The first round trains on the whole training set; at the start of every later
round one model scores every training example (one vectorised, un-augmented pass) and the round
trains only on the ``1 - trim_ratio`` fraction with the smallest cross-entropy loss.

Two forms (spec ``itlm_form``):

- ``"faithful"`` (default), as in the authors' code (``ITLM-simplecode``: one training run per
  round, each re-initialised): at a round boundary the subset is chosen by the weights of the
  previous round's epoch with the best selection metric (noisy validation accuracy; the
  checkpoint that round saved), then the network is **re-initialised** (a fresh draw, seeded by
  ``(seed, round)``), the optimiser state (momentum) is cleared and the learning-rate schedule
  **restarts** with the round as its horizon (the loop's ``schedule``: cosine over the round, or
  step decay at 50%/75% of it).
- ``"warm"``: the model keeps training across rounds under one schedule over ``max_epochs``, and
  the current (last-epoch) weights choose the subset.

Model selection of the run is the loop's (the best epoch over all rounds on noisy validation).
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from deca_tune.methods.registry import IMAGE_METHODS
from deca_tune.methods.image.base import ImageMethod
from deca_tune.tasks.base import SpecError

FORMS = ("faithful", "warm")
#: seed offset of the re-initialisations (round r draws from seed + offset * r)
REINIT_SEED_OFFSET = 7_000_003


@IMAGE_METHODS.register("itlm")
class ITLM(ImageMethod):
    defaults = {"trim_ratio": 0.2, "round_epochs": 5, "itlm_form": "faithful"}

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any]) -> None:
        form = spec.get("itlm_form", "faithful")
        if form not in FORMS:
            raise SpecError("itlm_form", f"unknown value {form!r}; choose one of: {', '.join(FORMS)}")
        trim = float(spec.get("trim_ratio", 0.2))
        if not 0.0 <= trim < 1.0:
            raise SpecError("trim_ratio", f"must be in [0, 1), got {trim!r}")
        if int(spec.get("round_epochs", 5)) < 1:
            raise SpecError("round_epochs", f"must be >= 1, got {spec.get('round_epochs')!r}")

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.check_spec(self.spec)
        self.trim_ratio = float(self.spec["trim_ratio"])
        self.round_epochs = int(self.spec["round_epochs"])
        self.form = str(self.spec["itlm_form"])
        self.kept = torch.arange(len(split.train_y_noisy))  # rows trained on this round
        #: 0-based index of the current round
        self.round = 0
        #: faithful form: the selection metric and weights of this round's best epoch so far
        self.round_best_value: float | None = None
        self.round_best_state: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ rounds
    def round_of(self, epoch: int) -> int:
        return epoch // self.round_epochs

    def schedule_horizon(self, epoch: int, max_epochs: int) -> int:
        """Epochs the learning-rate schedule spans from ``epoch``: the rest of the round
        (faithful) or the whole run (warm)."""
        if self.form == "warm":
            return max_epochs
        start = self.round_of(epoch) * self.round_epochs
        return max(1, min(self.round_epochs, max_epochs - start))

    def per_example_loss(self) -> torch.Tensor:
        """Cross-entropy of every training example under the current ``f`` (eval mode)."""
        return self.map_batches(lambda x, y: F.cross_entropy(self.f(x), y, reduction="none"),
                                self.tensor("train_x"), self.tensor("train_y"))

    def select(self, losses: torch.Tensor) -> torch.Tensor:
        """Sorted rows of the ``1 - trim_ratio`` fraction with the smallest ``losses``."""
        n_keep = max(1, int(round((1.0 - self.trim_ratio) * len(losses))))
        return torch.sort(torch.topk(losses, n_keep, largest=False).indices).values

    def reinitialise(self, round_index: int) -> None:
        """Give ``f`` a fresh initialisation (same parameter objects, so the loop's optimiser
        keeps pointing at them), drawn from ``seed + REINIT_SEED_OFFSET * round``."""
        seed = int(self.spec["seed"]) + REINIT_SEED_OFFSET * round_index
        fresh = self.make_backbone(self.spec["backbone"], seed=seed)
        self.f.load_state_dict(fresh.state_dict())

    def on_epoch_start(self, epoch: int) -> None:
        if epoch == 0 or epoch % self.round_epochs != 0:
            return
        self.round = self.round_of(epoch)
        if self.form == "warm":
            self.kept = self.select(self.per_example_loss())
            return
        if self.round_best_state is not None:  # the previous round's best checkpoint chooses
            self.f.load_state_dict(self.round_best_state)
        self.kept = self.select(self.per_example_loss())
        self.reinitialise(self.round)
        self.round_best_value, self.round_best_state = None, None
        self.restart_schedule = True

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Faithful form: remember the weights of this round's best epoch (selection metric)."""
        if self.form == "warm":
            return
        value = float(metrics[self.selection_metric])
        if self.round_best_value is None or value > self.round_best_value:
            self.round_best_value = value
            self.round_best_state = copy.deepcopy(self.f.state_dict())

    def train_indices(self) -> torch.Tensor:
        return self.kept

    @torch.no_grad()
    def clean_scores(self, x, y):
        """Negative cross-entropy (ITLM keeps the smallest losses)."""
        return -F.cross_entropy(self.f(x), y, reduction="none")

    # -------------------------------------------------------------- checkpoint
    def get_extra_state(self):
        best = None if self.round_best_state is None else {k: v.detach().cpu().clone()
                                                           for k, v in self.round_best_state.items()}
        return {**super().get_extra_state(), "kept": self.kept.cpu().clone(), "round": self.round,
                "round_best_value": self.round_best_value, "round_best_state": best}

    def set_extra_state(self, state):
        super().set_extra_state(state)
        self.kept = state["kept"].clone()
        self.round = int(state.get("round", 0))
        self.round_best_value = state.get("round_best_value")
        best = state.get("round_best_state")
        self.round_best_state = None if best is None else {k: v.clone().to(self.device) for k, v in best.items()}
