"""``mwnet``: Meta-Weight-Net (Shu et al., NeurIPS 2019).

A weight net ``V`` (1 -> 100 -> 1, ReLU, sigmoid) maps each example's loss to a weight. Each step:

1. virtual step: ``theta^ = theta - lr * grad_theta mean_i V(l_i) l_i(theta)`` (functional, via
   ``torch.func.functional_call``, keeping the graph to ``V``);
2. meta step: update ``V`` on the cross-entropy of ``f(.; theta^)`` on a clean meta batch
   (the 100-per-class meta set, drawn with ``self.generator``) with its own Adam;
3. actual step: the loop updates ``theta`` with ``mean_i V(l_i) l_i(theta)`` under the new ``V``.

The forward of step 1 runs with ``f``'s real parameters and buffers, so step 3 reuses it (as in
the reference implementation, the batch-norm statistics see one update per step).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from deca_tune.methods.registry import IMAGE_METHODS
from deca_tune.methods.image.base import ImageMethod
from deca_tune.tasks.base import SpecError, check_range


class WeightNet(nn.Module):
    """Loss -> weight in (0, 1): ``sigmoid(W2 relu(W1 l + b1) + b2)``."""

    def __init__(self, hidden: int = 100) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, loss: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(loss[:, None])).squeeze(1)


@IMAGE_METHODS.register("mwnet")
class MWNet(ImageMethod):
    defaults = {"meta_lr": 1e-3, "meta_weight_decay": 1e-4, "meta_hidden": 100, "meta_batch_size": 100}

    @classmethod
    def check_spec(cls, spec: Mapping[str, Any]) -> None:
        s = {**cls.defaults, **spec}
        check_range(s, "meta_lr", 0, low_open=True)
        check_range(s, "meta_weight_decay", 0)
        check_range(s, "meta_hidden", 1, integer=True)
        check_range(s, "meta_batch_size", 1, integer=True)
        if s.get("meta_per_class") == 0:
            raise SpecError("meta_per_class", "mwnet needs a clean meta set: must be > 0, got 0")

    def __init__(self, spec, split) -> None:
        super().__init__(spec, split)
        self.check_spec(self.spec)
        if len(split.meta_y) == 0:
            raise ValueError("mwnet needs a clean meta set: set meta_per_class > 0")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.spec["seed"]) + 104729)
            self.vnet = WeightNet(int(self.spec["meta_hidden"]))
        self.meta_optimizer = torch.optim.Adam(self.vnet.parameters(), lr=float(self.spec["meta_lr"]),
                                               weight_decay=float(self.spec["meta_weight_decay"]))

    def meta_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.split.meta_y), (int(self.spec["meta_batch_size"]),),
                            generator=self.generator)
        idx = idx.to(self.device)
        x = self.inputs(self.tensor("meta_x")[idx].to(self.device))
        return x, self.tensor("meta_y")[idx].to(self.device)

    def batch_loss(self, x, y, step, epoch, lr):
        params = {n: p for n, p in self.f.named_parameters()}
        buffers = {n: b for n, b in self.f.named_buffers()}
        # 1. forward with the real parameters (reused in 3) and a virtual SGD step
        cost = F.cross_entropy(functional_call(self.f, (params, buffers), (x,)), y, reduction="none")
        virtual_loss = (self.vnet(cost.detach()) * cost).mean()
        grads = torch.autograd.grad(virtual_loss, list(params.values()), create_graph=True)
        fast = {n: p - lr * g for (n, p), g in zip(params.items(), grads)}
        # 2. meta step on the clean batch; buffer copies keep the running stats untouched
        xm, ym = self.meta_batch()
        fast_buffers = {n: b.clone() for n, b in buffers.items()}
        meta_loss = F.cross_entropy(functional_call(self.f, (fast, fast_buffers), (xm,)), ym)
        meta_grads = torch.autograd.grad(meta_loss, list(self.vnet.parameters()), retain_graph=True)
        for p, g in zip(self.vnet.parameters(), meta_grads):
            p.grad = g
        self.meta_optimizer.step()
        self.meta_optimizer.zero_grad(set_to_none=True)
        # 3. weighted loss under the updated weight net
        with torch.no_grad():
            weights = self.vnet(cost.detach())
        loss = (weights * cost).mean()
        return loss, {"weighted_ce": float(loss.detach()), "meta_ce": float(meta_loss.detach()),
                      "mwnet/weight_mean": float(weights.mean())}

    def trainable_parameters(self):
        return [p for p in self.f.parameters() if p.requires_grad]

    @torch.no_grad()
    def clean_scores(self, x, y):
        """The weight net's weight of the example's loss."""
        return self.vnet(F.cross_entropy(self.f(x), y, reduction="none"))

    def get_extra_state(self):
        return {**super().get_extra_state(), "meta_optimizer": self.meta_optimizer.state_dict()}

    def set_extra_state(self, state):
        super().set_extra_state(state)
        self.meta_optimizer.load_state_dict(state["meta_optimizer"])
