"""Multi-class DeCA(p) losses (Eq. 18, 22, 24) against values worked out by hand.

Two examples, three classes. The numbers below were computed on paper from the equations, not
by calling the implementation twice.
"""
from __future__ import annotations

import math

import pytest
import torch

from deca_tune.losses.deca_multiclass import (deca_p_loss, expected_loglik_eq22,
                                              expected_loglik_eq24, kl_f_fprime, safe_log)

P = torch.tensor([[0.5, 0.3, 0.2],
                  [0.1, 0.6, 0.3]])
Y = torch.tensor([0, 2])  # observed labels
# h(x_i, c, j): rows = candidate true class c, columns = observed label j
H = torch.tensor([
    [[0.7, 0.2, 0.1], [0.25, 0.5, 0.25], [0.1, 0.1, 0.8]],
    [[0.6, 0.3, 0.1], [0.2, 0.4, 0.4], [0.05, 0.15, 0.8]],
])


def test_eq22_attending_class_0():
    # k = 0.  example 0: y~ = k  -> -C1 (1 - p_00) + log h(x0, 0, 0) p_00
    #                              = -2 * 0.5 + log(0.7) * 0.5
    #         example 1: y~ = 2  -> -C2 (1 - p_10 - p_12) + log h(x1, 0, 2) p_10
    #                              = -5 * (1 - 0.1 - 0.3) + log(0.1) * 0.1
    expected = torch.tensor([-1.0 + 0.5 * math.log(0.7), -3.0 + 0.1 * math.log(0.1)])
    got = expected_loglik_eq22(P, H[:, 0, :].log(), Y, k=0, c1=2.0, c2=5.0)
    assert torch.allclose(got, expected, atol=1e-6)


def test_eq22_attending_class_2():
    # k = 2.  example 0: y~ = 0 != k -> -C2 (1 - p_02 - p_00) + log h(x0, 2, 0) p_02
    #                              = -5 * 0.3 + log(0.1) * 0.2
    #         example 1: y~ = 2 = k  -> -C1 (1 - p_12) + log h(x1, 2, 2) p_12
    #                              = -2 * 0.7 + log(0.8) * 0.3
    expected = torch.tensor([-1.5 + 0.2 * math.log(0.1), -1.4 + 0.3 * math.log(0.8)])
    got = expected_loglik_eq22(P, H[:, 2, :].log(), Y, k=2, c1=2.0, c2=5.0)
    assert torch.allclose(got, expected, atol=1e-6)


def test_eq24_values_with_and_without_the_observed_class_term():
    # k = 1.  example 0 (y~ = 0): sum_c log h(x0, c, 0) p_0c
    #   = log(.7)*.5 + log(.25)*.3 + log(.1)*.2 ; the literal Eq. 24 drops c = y~ = 0 (!= k)
    # example 1 (y~ = 2): log(.1)*.1 + log(.4)*.6 + log(.8)*.3 ; literal drops c = 2
    full = torch.tensor([0.5 * math.log(0.7) + 0.3 * math.log(0.25) + 0.2 * math.log(0.1),
                         0.1 * math.log(0.1) + 0.6 * math.log(0.4) + 0.3 * math.log(0.8)])
    literal = torch.tensor([0.3 * math.log(0.25) + 0.2 * math.log(0.1),
                            0.1 * math.log(0.1) + 0.6 * math.log(0.4)])
    assert torch.allclose(expected_loglik_eq24(P, H.log(), Y, k=1), full, atol=1e-6)
    assert torch.allclose(expected_loglik_eq24(P, H.log(), Y, k=1, include_observed=False), literal, atol=1e-6)


def test_eq24_when_observed_equals_k_keeps_every_other_class():
    # k = 0, example 0 has y~ = 0 = k: all c != k contribute, nothing dropped in either reading
    e_full = expected_loglik_eq24(P, H.log(), Y, k=0)[0]
    e_lit = expected_loglik_eq24(P, H.log(), Y, k=0, include_observed=False)[0]
    hand = 0.5 * math.log(0.7) + 0.3 * math.log(0.25) + 0.2 * math.log(0.1)
    assert e_full.item() == pytest.approx(hand, abs=1e-6)
    assert e_lit.item() == pytest.approx(hand, abs=1e-6)


def test_eq24_stop_gradient_only_lets_class_k_train_h():
    log_h = H.log().clone().requires_grad_(True)
    p = P.clone().requires_grad_(True)
    expected_loglik_eq24(p, log_h, Y, k=1).sum().backward()
    g = log_h.grad
    # d/d log h(x_i, c, j) is p_ic only for c = k and j = y~_i; zero elsewhere (stop-gradient)
    want = torch.zeros_like(g)
    want[0, 1, 0] = 0.3
    want[1, 1, 2] = 0.6
    assert torch.allclose(g, want)
    # f still gets the gradient of every term: d/dp_ic = log h(x_i, c, y~_i)
    assert torch.allclose(p.grad[0], torch.tensor([math.log(0.7), math.log(0.25), math.log(0.1)]), atol=1e-6)


def test_kl_eq18_and_total_loss():
    fp = torch.tensor([[0.25, 0.25, 0.5]])
    kl = kl_f_fprime(P[:1].log(), fp.log())
    hand = 0.5 * math.log(0.5 / 0.25) + 0.3 * math.log(0.3 / 0.25) + 0.2 * math.log(0.2 / 0.5)
    assert kl.item() == pytest.approx(hand, abs=1e-6)
    assert kl_f_fprime(P.log(), P.log()).abs().max().item() < 1e-7
    loss = deca_p_loss(torch.tensor([-1.0, -3.0]), torch.tensor([0.2, 0.4]))
    assert loss.item() == pytest.approx(2.0 + 0.3)


def test_safe_log_is_finite_at_zero():
    assert torch.isfinite(safe_log(torch.tensor([0.0, 1.0]))).all()
