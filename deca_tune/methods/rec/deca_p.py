"""``deca_p``: DeCA with a fixed pre-trained prior (paper Eq. 13, Algorithm 2).

First a model f' of the same backbone as f is trained with ``normal`` (plain BCE) under seed
``seed + 1000`` (spec ``pretrain_seed`` overrides, ``pretrain_overrides`` changes other settings;
the loop trains it, or takes it from its cache, see :mod:`deca_tune.training.pretrain`), then frozen; f and the noise models h, h' are trained with the same DP/DN
likelihood as ``deca`` and the agreement KL to f'.

KL convention: ``alpha * KL(f'||f) + (1 - alpha) * KL(f||f')``, i.e. ``deca``'s convention with
g = f'. This is what the DeCA authors' code does (``KL(p, prediction) * alpha + KL(prediction, p)
* (1 - alpha)`` with ``p`` the frozen model); the paper's Eq. 13 writes the two terms the other
way round (alpha * D[P_f(Y|Y~) || P(Y)] + ...). With the authors' ML-100K setting alpha = 1 the
loss is KL(f'||f).

f' gets no gradient. Its mode follows the authors' code by default (spec ``prior_mode: "train"``):
their f' is left in training mode after its pre-training (``train.py``: ``aux_model`` is never
put in eval mode; the CDAE branch scores ``self.aux_model(batch_idx, batch_matrix).detach()``),
so on CDAE the prior sees its corruption (dropout 0.5, a fresh mask per batch, from the global
torch generator) and the batch's item norm. ``prior_mode: "eval"`` holds f' in eval mode (no
corruption, the fixed evaluation norm; this project's form before issue 17). Only backbones that
behave differently in training mode (CDAE; NeuMF with ``dropout`` > 0) are affected. For DeCA(p) the
probability that a training positive is real is f itself (section 5.4). Ablations (Table 5):
``deca_p-dp``, ``deca_p-dn``. ``pretrain_info`` records where f' came from (cache path, whether
it was cached, seconds spent pre-training) on the trainer (``trainer.pretrain_info``).
"""
from __future__ import annotations


import torch
from torch import nn

from deca_tune.methods.registry import REC_METHODS
from deca_tune.methods.base import PRETRAIN_DEFAULTS, PretrainFn, pretrain_overrides
from deca_tune.methods.rec.deca import DeCABase, register_ablations
from deca_tune.methods.rec.normal import pair_logits
from deca_tune.tasks.base import SpecError

#: spec ``prior_mode``: f''s mode while f trains (the authors': training mode)
PRIOR_MODES = ("train", "eval")


@REC_METHODS.register("deca_p")
class DeCAP(DeCABase):
    """DeCA(p): DP/DN likelihood plus the KL to a frozen pre-trained f' (Eq. 13, Algorithm 2)."""

    defaults = {**DeCABase.defaults, **PRETRAIN_DEFAULTS, "prior_mode": "train"}

    @classmethod
    def check_spec(cls, spec) -> None:
        super().check_spec(spec)
        if spec.get("prior_mode", "train") not in PRIOR_MODES:
            raise SpecError("prior_mode", f"unknown value {spec.get('prior_mode')!r}; choose one of: "
                            f"{', '.join(PRIOR_MODES)}")

    def __init__(self, spec, split, subtask_only=None) -> None:
        super().__init__(spec, split, subtask_only)
        # built untrained here so that a checkpoint can restore it; prepare() trains it
        self.g: nn.Module = self.make_backbone(self.spec["backbone"],
                                               seed=pretrain_overrides(self.spec)["seed"])
        self.g.requires_grad_(False)

    def prepare(self, pretrain: PretrainFn) -> None:
        self.g.load_state_dict(pretrain(pretrain_overrides(self.spec)).state_dict())

    def train(self, mode: bool = True):
        super().train(mode)
        # the authors' f' stays in training mode while f trains (prior_mode "train")
        self.g.train(mode and self.spec.get("prior_mode", "train") == "train")
        return self

    def prior_logits(self, users, pos, neg, neg_users=None):
        with torch.no_grad():
            return pair_logits(self.g, users, pos, neg, neg_users)

    @torch.no_grad()
    def clean_probability(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Section 5.4: for DeCA(p), P(y=1 | y~=1) = f."""
        return torch.sigmoid(self.f(users, items))

    @torch.no_grad()
    def clean_logit(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.f(users, items)


register_ablations(DeCAP, "deca_p")
