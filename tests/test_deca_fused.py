"""DeCA's fused loss (issue 21): the same loss as ``deca_loss`` on the sigmoids, bit for bit, and
autograd's gradient up to rounding, in every sub-task, for alpha in {0, 0.3, 1}, saturated logits
(the safe-log clamps) included, with and without a frozen prior."""
from __future__ import annotations

import pytest
import torch

from deca_tune.losses.deca import deca_loss, deca_loss_from_logits


def logits(seed: int, dtype: torch.dtype) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = [4 * torch.randn(*shape, generator=gen, dtype=dtype) for shape in
           [(64,), (64, 3)] * 3]
    out[0][:3] = torch.tensor([40.0, -40.0, 16.0])  # sigmoid 1 and 0 in float: the clamps act
    out[4][:2] = torch.tensor([-40.0, 40.0])
    out[5][0, :2] = torch.tensor([40.0, -40.0])
    return out


@pytest.mark.parametrize("subtask", ["dp", "dn"])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("frozen_prior", [False, True])
def test_fused_loss_is_deca_loss_and_its_gradient(subtask, alpha, frozen_prior):
    for dtype, rtol in ((torch.float64, 1e-9), (torch.float32, 2e-5)):
        base = logits(3, dtype)
        ref_in = [x.clone().requires_grad_(not (frozen_prior and i in (2, 3))) for i, x in enumerate(base)]
        new_in = [x.clone().requires_grad_(not (frozen_prior and i in (2, 3))) for i, x in enumerate(base)]
        settings = dict(alpha=alpha, c_dp=1000.0, c_dn=100.0, ratio=3)
        ref, ref_parts = deca_loss(*[torch.sigmoid(x) for x in ref_in], subtask, **settings)
        new, new_parts, noise = deca_loss_from_logits(*new_in, subtask, **settings)
        assert torch.equal(new.detach(), ref.detach())  # the same operations: the same loss
        for key in ("kl", "likelihood"):
            assert torch.equal(new_parts[key], ref_parts[key])
        assert torch.equal(noise, torch.sigmoid(base[4]))
        ref.backward()
        new.backward()
        for r, n in zip(ref_in, new_in):
            if r.requires_grad:
                torch.testing.assert_close(n.grad, r.grad, rtol=rtol, atol=rtol * 1e-3)
            else:
                assert n.grad is None


def test_loss_backward_option_trains_both_ways_and_is_checked():
    """``loss_backward: fused`` (opt-in) trains to the same first-epoch loss as ``autograd``
    (the forward is the same operations; the gradients differ only by rounding, so later epochs
    may drift) and a bad value is a SpecError naming the key."""
    import numpy as np

    from deca_tune.tasks.base import SpecError
    from deca_tune.training.rec_trainer import RecTrainer
    from tests.test_linear_recipe import spec, tiny_split

    split = tiny_split()
    losses = {}
    for how in ("autograd", "fused"):
        t = RecTrainer(spec(method="deca", recipe="published", loss_backward=how, max_epochs=2), split=split)
        losses[how] = [t.train_epoch()["loss"] for _ in range(2)]
        assert all(np.isfinite(losses[how]))
    assert losses["fused"][0] == pytest.approx(losses["autograd"][0], rel=1e-5)
    with pytest.raises(SpecError, match="loss_backward"):
        RecTrainer(spec(method="deca", loss_backward="sparse"), split=split)
