"""Label-noise injection: realised rate, reproducibility, the 'other class' convention, pair noise."""
from __future__ import annotations

import math

import pytest
import torch

from deca_tune.data.image.noise import inject_noise


def transition_matrix(true: torch.Tensor, noisy: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Empirical ``P(noisy = j | true = i)`` as a ``[C, C]`` matrix (rows sum to 1 where seen)."""
    counts = torch.bincount(true * n_classes + noisy, minlength=n_classes * n_classes)
    counts = counts.reshape(n_classes, n_classes).double()
    return counts / counts.sum(dim=1, keepdim=True).clamp_min(1)


def _labels(n: int = 20_000, c: int = 10) -> torch.Tensor:
    return torch.arange(n) % c


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.4, 0.8])
def test_symmetric_rate_within_sampling_error(rate):
    y = _labels()
    noisy, mask = inject_noise(y, 10, rate, "symmetric", torch.Generator().manual_seed(3))
    realised = (noisy != y).float().mean().item()
    sd = math.sqrt(rate * (1 - rate) / len(y))
    assert abs(realised - rate) <= 4 * sd + 1e-12
    # the mask is exactly the set of changed labels: a flipped label never keeps its class
    assert torch.equal(mask, noisy != y)


def test_symmetric_targets_are_uniform_over_other_classes():
    y = torch.zeros(30_000, dtype=torch.int64)
    noisy, mask = inject_noise(y, 4, 0.6, "symmetric", torch.Generator().manual_seed(0))
    counts = torch.bincount(noisy[mask], minlength=4).float()
    assert counts[0] == 0
    share = counts[1:] / counts[1:].sum()
    assert torch.all((share - 1 / 3).abs() < 0.02), share


def test_same_seed_same_labels_other_seed_differs():
    y = _labels(5000)
    a = inject_noise(y, 10, 0.4, generator=torch.Generator().manual_seed(11))
    b = inject_noise(y, 10, 0.4, generator=torch.Generator().manual_seed(11))
    c = inject_noise(y, 10, 0.4, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_pair_noise_moves_to_next_class():
    y = _labels(10_000, 5)
    noisy, mask = inject_noise(y, 5, 0.3, "pair", torch.Generator().manual_seed(1))
    assert torch.equal(noisy[mask], (y[mask] + 1) % 5)
    assert torch.equal(noisy[~mask], y[~mask])
    t = transition_matrix(y, noisy, 5)
    assert torch.allclose(t.diagonal(), torch.full((5,), 0.7, dtype=torch.float64), atol=0.04)
    assert torch.allclose(t.sum(1), torch.ones(5, dtype=torch.float64))


def test_input_is_not_modified_and_bad_arguments_fail_clearly():
    y = _labels(100)
    before = y.clone()
    inject_noise(y, 10, 0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, before)
    with pytest.raises(ValueError, match="noise type"):
        inject_noise(y, 10, 0.2, "asymmetric")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        inject_noise(y, 10, 1.0)
    with pytest.raises(ValueError, match="labels must lie"):
        inject_noise(y, 5, 0.2)
