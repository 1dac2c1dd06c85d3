"""``itlm``: iterative trimmed loss minimisation (Shen & Sanghavi, ICML 2019).

Training runs in rounds. The first round trains on the whole training set; at the start of every
later round one model scores every training example and the round trains only on the
``1 - trim_ratio`` fraction with the smallest cross-entropy loss. ``trim_ratio`` defaults to
``"noise_rate"``: the spec's noise rate, as the authors' scripts keep ``1 - noise rate`` (their
``empirical_good_sample_ratio``); a number fixes it (the search space searches it).

Three forms (spec ``itlm_form``):

- ``"official"`` (default), the authors' code (``yanyao-shen/ITLM-simplecode``:
  ``script-cifar10.sh``, ``cifar_mnist_noisy.py``, ``cifar_mnist_noisy_module.py``): one training
  run per round, each re-initialised, with their round lengths (a long first round, four short
  ones, four long ones: 80, 20 x 4, 133 x 4 epochs, :data:`OFFICIAL_ROUNDS`) scaled to
  ``max_epochs`` (:func:`official_rounds`); plain SGD (no momentum, no weight decay) with the lr
  x0.2 from epoch ``int(0.6 * round length)`` of every round (schedule ``step60``, imposed by
  :meth:`ITLM.optimizer_overrides`); the subset chosen by the previous round's best checkpoint,
  its losses computed as theirs: the training transform (augmented where the data set's
  training is), the network in inference mode.
- ``"faithful"`` (the default before issue 17): the same rounds-as-runs mechanism with equal
  rounds of ``round_epochs`` epochs (the last takes what is left of ``max_epochs``), the spec's
  optimiser and schedule (SGD with momentum and weight decay, cosine), restarted every round,
  and un-augmented selection losses.
- ``"warm"``: the model keeps training across rounds of ``round_epochs`` under one schedule over
  ``max_epochs``, and the current (last-epoch) weights choose the subset.

In the two re-initialising forms, at a round boundary the subset is chosen by the weights of the
previous round's epoch with the best selection metric (noisy validation accuracy; the checkpoint
that round saved), then the network is **re-initialised** (a fresh draw, seeded by
``(seed, round)``), the optimiser state (momentum) is cleared and the learning-rate schedule
**restarts** with the round as its horizon.

Model selection of the run is the loop's (the best epoch over all rounds on noisy validation).
"""
from __future__ import annotations

import copy
import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from deca_tune.methods.registry import IMAGE_METHODS
from deca_tune.methods.image.base import ImageMethod
from deca_tune.tasks.base import SpecError

FORMS = ("official", "faithful", "warm")
#: the official script's round lengths in epochs (``script-cifar10.sh``: the first and the last
#: four rounds take their lengths from the command line, 80 and 133 in the run the issue cites;
#: rounds 1-4 are 20)
OFFICIAL_ROUNDS = (80, 20, 20, 20, 20, 133, 133, 133, 133)
#: ``trim_ratio`` value that means "the spec's noise rate"
FROM_NOISE = "noise_rate"


def official_rounds(max_epochs: int) -> list[int]:
    """:data:`OFFICIAL_ROUNDS` scaled to ``max_epochs``: round ``r`` ends at epoch
    ``round(max_epochs * cumsum[r] / total)`` (half up); rounds that get no epoch vanish (fewer
    than 9 epochs). ``official_rounds(60) == [7, 2, 1, 2, 2, 11, 12, 11, 12]``."""
    total, ends, acc = sum(OFFICIAL_ROUNDS), [], 0
    for length in OFFICIAL_ROUNDS:
        acc += length
        end = int(math.floor(max_epochs * acc / total + 0.5))
        if end > (ends[-1] if ends else 0):
            ends.append(end)
    return [b - a for a, b in zip([0] + ends[:-1], ends)]


#: seed offset of the re-initialisations (round r draws from seed + offset * r)
REINIT_SEED_OFFSET = 7_000_003


@IMAGE_METHODS.register("itlm")
class ITLM(ImageMethod):
    defaults = {"trim_ratio": FROM_NOISE, "round_epochs": 5, "itlm_form": "official"}

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any]) -> None:
        form = spec.get("itlm_form", "official")
        if form not in FORMS:
            raise SpecError("itlm_form", f"unknown value {form!r}; choose one of: {', '.join(FORMS)}")
        trim = cls.resolve_trim(spec)
        if not 0.0 <= trim < 1.0:
            raise SpecError("trim_ratio", f"must be in [0, 1) (or {FROM_NOISE!r}), got {trim!r}")
        if int(spec.get("round_epochs", 5)) < 1:
            raise SpecError("round_epochs", f"must be >= 1, got {spec.get('round_epochs')!r}")

    @staticmethod
    def resolve_trim(spec: Mapping[str, Any]) -> float:
        """``trim_ratio`` as a number: the spec's ``noise_rate`` for ``"noise_rate"``."""
        trim = spec.get("trim_ratio", FROM_NOISE)
        if trim == FROM_NOISE:
            trim = spec.get("noise_rate", 0.0)
        try:
            return float(trim)
        except (TypeError, ValueError):
            raise SpecError("trim_ratio", f"must be a number in [0, 1) or {FROM_NOISE!r}, got {trim!r}") from None

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.check_spec(self.spec)
        self.trim_ratio = self.resolve_trim(self.spec)
        self.round_epochs = int(self.spec["round_epochs"])
        self.form = str(self.spec["itlm_form"])
        #: official form: the first epoch of every round (:func:`official_rounds` of ``max_epochs``)
        lengths = official_rounds(int(self.spec.get("max_epochs", 1)))
        self.round_starts = [sum(lengths[:r]) for r in range(len(lengths))]
        self.kept = torch.arange(len(split.train_y_noisy))  # rows trained on this round
        #: 0-based index of the current round
        self.round = 0
        #: faithful form: the selection metric and weights of this round's best epoch so far
        self.round_best_value: float | None = None
        self.round_best_state: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ rounds
    def round_of(self, epoch: int) -> int:
        if self.form != "official":
            return epoch // self.round_epochs
        return max(r for r, start in enumerate(self.round_starts) if start <= epoch)

    def round_start(self, r: int) -> int:
        return self.round_starts[r] if self.form == "official" else r * self.round_epochs

    def schedule_horizon(self, epoch: int, max_epochs: int) -> int:
        """Epochs the learning-rate schedule spans from ``epoch``: the rest of the round
        (official, faithful) or the whole run (warm)."""
        if self.form == "warm":
            return max_epochs
        r = self.round_of(epoch)
        start = self.round_start(r)
        if self.form == "official":
            end = self.round_starts[r + 1] if r + 1 < len(self.round_starts) else max_epochs
            return max(1, end - start)
        return max(1, min(self.round_epochs, max_epochs - start))

    def optimizer_overrides(self) -> dict[str, Any]:
        """The official form: plain SGD (no momentum, no weight decay: MXNet's ``sgd`` Trainer
        with only a learning rate), lr x0.2 at 60% of every round."""
        if self.form != "official":
            return {}
        return {"optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0, "schedule": "step60"}

    def per_example_loss(self) -> torch.Tensor:
        """Cross-entropy of every training example under the current ``f`` (eval mode); the
        official form feeds the training transform (augmented where training is), as their
        selection pass reads the training loader."""
        augment = self.augment if self.form == "official" else False
        return self.map_batches(lambda x, y: F.cross_entropy(self.f(x), y, reduction="none"),
                                self.tensor("train_x"), self.tensor("train_y"), augment=augment)

    def select(self, losses: torch.Tensor) -> torch.Tensor:
        """Sorted rows of the ``1 - trim_ratio`` fraction with the smallest ``losses`` (official:
        their ``int(ratio * n)``; the other forms round)."""
        keep = (1.0 - self.trim_ratio) * len(losses)
        n_keep = max(1, int(keep) if self.form == "official" else int(round(keep)))
        return torch.sort(torch.topk(losses, n_keep, largest=False).indices).values

    def reinitialise(self, round_index: int) -> None:
        """Give ``f`` a fresh initialisation (same parameter objects, so the loop's optimiser
        keeps pointing at them), drawn from ``seed + REINIT_SEED_OFFSET * round``."""
        seed = int(self.spec["seed"]) + REINIT_SEED_OFFSET * round_index
        fresh = self.make_backbone(self.spec["backbone"], seed=seed)
        self.f.load_state_dict(fresh.state_dict())

    def on_epoch_start(self, epoch: int) -> None:
        if epoch == 0 or self.round_start(self.round_of(epoch)) != epoch:
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
