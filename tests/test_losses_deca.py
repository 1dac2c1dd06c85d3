"""The binary DeCA loss against values worked out by hand from the formulas in issue 3."""
from __future__ import annotations

import math

import pytest
import torch

from deca_tune.losses import deca as L


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def kl(p: float, q: float) -> float:
    """Bernoulli KL(p || q) in plain python."""
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


# ---- all-halves case: every KL is 0 and every log is log(1/2), so the loss is a closed form ----

def test_dp_all_halves_is_ln2_plus_half_c():
    # pos: -(log .5 * .5) = ln2/2 ; neg: -(log .5 * .5 - C * .5) = ln2/2 + C/2
    half = t(0.5)
    loss, parts = L.deca_loss(half, half, half, half, half, half, "dp", alpha=1.0, c_dp=10.0, c_dn=3.0)
    assert loss.item() == pytest.approx(math.log(2) + 5.0, rel=1e-12)
    assert parts["kl"].item() == pytest.approx(0.0, abs=1e-15)


def test_dn_all_halves_is_ln2_plus_half_c():
    # pos: -(log .5 * .5 - C * .5) = ln2/2 + C/2 ; neg: -(log .5 * .5) = ln2/2
    half = t(0.5)
    loss, _ = L.deca_loss(half, half, half, half, half, half, "dn", alpha=0.3, c_dp=10.0, c_dn=3.0)
    assert loss.item() == pytest.approx(math.log(2) + 1.5, rel=1e-12)


# ---- asymmetric numbers, two positives, two negatives per positive ----

F_POS, G_POS, H_POS = (0.8, 0.3), (0.7, 0.4), (0.2, 0.6)
F_NEG, G_NEG, H_NEG = ((0.1, 0.5), (0.25, 0.9)), ((0.2, 0.3), (0.5, 0.6)), ((0.1, 0.4), (0.3, 0.05))
C_DP, C_DN = 7.0, 2.0


def _inputs():
    return (t(*F_POS), torch.tensor(F_NEG, dtype=torch.float64), t(*G_POS),
            torch.tensor(G_NEG, dtype=torch.float64), t(*H_POS), torch.tensor(H_NEG, dtype=torch.float64))


def _expected(subtask: str, alpha: float) -> float:
    def k(f, g):
        return alpha * kl(g, f) + (1 - alpha) * kl(f, g)

    pos = []
    for f, g, h in zip(F_POS, G_POS, H_POS):
        ll = math.log(h) * (1 - f) if subtask == "dp" else math.log(h) * f - C_DN * (1 - f)
        pos.append(k(f, g) - ll)
    neg = []
    for fr, gr, hr in zip(F_NEG, G_NEG, H_NEG):
        for f, g, h in zip(fr, gr, hr):
            ll = math.log(1 - h) * (1 - f) - C_DP * f if subtask == "dp" else math.log(1 - h) * f
            neg.append(k(f, g) - ll)
    ratio = 2  # negatives per positive
    return sum(pos) / len(pos) + ratio * sum(neg) / len(neg)


@pytest.mark.parametrize("subtask", ["dp", "dn"])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_loss_matches_formula(subtask, alpha):
    loss, _ = L.deca_loss(*_inputs(), subtask, alpha=alpha, c_dp=C_DP, c_dn=C_DN)
    assert loss.item() == pytest.approx(_expected(subtask, alpha), rel=1e-10)


def test_single_terms_by_hand():
    # KL(0.7 || 0.8) = 0.7 ln(7/8) + 0.3 ln(3/2) = -0.093472 + 0.121640 = 0.028168
    assert L.bernoulli_kl(t(0.7), t(0.8)).item() == pytest.approx(0.0281683, abs=1e-6)
    # DP negative: ln(0.9) * 0.9 - 7 * 0.1 = -0.094824 - 0.7
    assert L.dp_negative_term(t(0.1), t(0.1), 7.0).item() == pytest.approx(-0.7948245, abs=1e-6)
    # DN positive: ln(0.2) * 0.8 - 2 * 0.2 = -1.287550 - 0.4
    assert L.dn_positive_term(t(0.8), t(0.2), 2.0).item() == pytest.approx(-1.6875503, abs=1e-6)
    # alpha mixes the two directions: 0.25 * KL(g||f) + 0.75 * KL(f||g), g = 0.7, f = 0.8
    # KL(0.8 || 0.7) = 0.8 ln(8/7) + 0.2 ln(2/3) = 0.106825 - 0.081093 = 0.025732
    want = 0.25 * 0.0281683 + 0.75 * 0.0257320
    assert L.agreement_kl(t(0.8), t(0.7), 0.25).item() == pytest.approx(want, abs=1e-6)


def test_clean_probability_eq25():
    # h' f / (h' f + h (1 - f)) = 0.9*0.6 / (0.54 + 0.2*0.4) = 0.54 / 0.62
    p = L.clean_probability(t(0.6, 0.0, 1.0), t(0.2, 0.0, 0.0), t(0.9, 0.0, 0.3))
    assert p[0].item() == pytest.approx(0.54 / 0.62, rel=1e-12)
    assert p[1].item() == 0.0  # 0/0 -> 0, not NaN
    assert p[2].item() == pytest.approx(1.0)


def test_bad_subtask_and_alpha_raise():
    with pytest.raises(ValueError, match="sub-task"):
        L.deca_loss(*_inputs(), "both", alpha=1.0, c_dp=1.0, c_dn=1.0)
    with pytest.raises(ValueError, match="alpha"):
        L.agreement_kl(t(0.5), t(0.5), 1.5)


# ---- numerical safety ----

@pytest.mark.parametrize("subtask", ["dp", "dn"])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_finite_at_extremes(subtask, alpha):
    grid = torch.tensor([0.0, 1.0, 0.0, 1.0, 1e-12, 1 - 1e-7], dtype=torch.float32)
    f = grid.clone().requires_grad_(True)
    g = grid.flip(0).clone().requires_grad_(True)
    h = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0]).requires_grad_(True)
    loss, parts = L.deca_loss(f, f.flip(0), g, g.roll(1), h, h.roll(2), subtask, alpha=alpha,
                              c_dp=1e4, c_dn=1e4)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in parts.values())
    for x in (f, g, h):
        assert torch.isfinite(x.grad).all()


# ---- gradient flow: g learns only through the KL ----

def test_g_gradient_is_the_kl_gradient_only():
    # alpha = 1: d/dg KL(g||f) = ln(g/f) - ln((1-g)/(1-f)); each positive has weight 1/B (B = 2)
    f_pos, f_neg, g_pos, g_neg, h_pos, h_neg = _inputs()
    g_pos.requires_grad_(True)
    loss, _ = L.deca_loss(f_pos, f_neg, g_pos, g_neg, h_pos, h_neg, "dp", 1.0, C_DP, C_DN)
    loss.backward()
    want = [(math.log(g / f) - math.log((1 - g) / (1 - f))) / 2 for f, g in zip(F_POS, G_POS)]
    assert g_pos.grad.tolist() == pytest.approx(want, rel=1e-10)

    # changing the noise model and the constants leaves g's gradient untouched
    g2 = g_pos.detach().clone().requires_grad_(True)
    loss2, _ = L.deca_loss(f_pos, f_neg, g2, g_neg, h_pos * 0.5, h_neg * 0.1, "dn", 1.0, 1e3, 1e3)
    loss2.backward()
    assert torch.allclose(g2.grad, g_pos.grad)


def test_noise_model_gradient_ignores_g():
    # DP positive part: -log h * (1 - f) / B  ->  d/dh = -(1 - f) / (h B)
    f_pos, f_neg, g_pos, g_neg, h_pos, h_neg = _inputs()
    h_pos.requires_grad_(True)
    loss, _ = L.deca_loss(f_pos, f_neg, g_pos, g_neg, h_pos, h_neg, "dp", 0.5, C_DP, C_DN)
    loss.backward()
    want = [-(1 - f) / (h * 2) for f, h in zip(F_POS, H_POS)]
    assert h_pos.grad.tolist() == pytest.approx(want, rel=1e-10)


def test_clean_logit_is_log_odds_of_eq25():
    zf, zh, zhp = t(0.4, -3.0, 5.0), t(-1.0, 2.0, 0.5), t(2.0, -0.5, 1.0)
    p = L.clean_probability(torch.sigmoid(zf), torch.sigmoid(zh), torch.sigmoid(zhp))
    assert torch.allclose(L.clean_logit(zf, zh, zhp), torch.log(p / (1 - p)), rtol=1e-10)
    # no saturation where the probability is 1.0 in float32
    big = L.clean_logit(torch.tensor([30.0, 40.0]), torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert big[1] > big[0]
