"""T-CE, R-CE and WBPR in their published forms (issues 10, 17): hand-computed losses, the drop-rate
schedule, WBPR's user weights, and the named option variants that keep the earlier values.

BCE of a positive with logit z is softplus(-z) = ln(1 + e^-z); of a negative, softplus(z).
Values used below (to 1e-6):
  softplus(-2) = 0.126928   softplus(-1) = 0.313262   softplus(-0.5) = 0.474077
  softplus(0)  = 0.693147   softplus(1)  = 1.313262   softplus(2)    = 2.126928
  softplus(3)  = 3.048587   softplus(-3) = 0.048587
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deca_tune.data.interactions import RecSplit
from deca_tune.losses.bpr import bpr_loss
from deca_tune.losses.reweighted_bce import reweighted_bce
from deca_tune.losses.truncated_bce import (drop_rate_schedule, linear_drop_rate, truncated_bce,
                                            truncated_bce_positives)
from deca_tune.methods import REC_METHODS
from deca_tune.methods.rec.normal import bce_loss, pair_logits
from deca_tune.methods.rec.wbpr import wbpr_user_weights
from deca_tune.training.rec_trainer import RecTrainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# 3 positives and their 3 negatives (one each)
POS = torch.tensor([2.0, -1.0, 0.5])       # BCE 0.126928, 1.313262, 0.474077
NEG = torch.tensor([[0.0], [1.0], [-2.0]])  # BCE 0.693147, 1.313262, 0.126928


def _tiny_split() -> RecSplit:
    """User 0 has 4 training positives, user 1 two, user 2 one, user 3 none."""
    train = np.array([[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [1, 1], [2, 0]])
    held = np.array([[0, 4], [1, 5], [2, 6], [3, 7]])
    return RecSplit("tiny-wbpr", 4, 8, train, held, held, held, held, ks=(3,))


def _method(name: str, split: RecSplit, **spec):
    return REC_METHODS.get(name)({"backbone": "mf", "seed": 0, **spec}, split)


# ------------------------------------------------------------------------------------- T-CE
# the authors' selection inside normal's scaling (default, scale "mean"): mean over the kept
# positives + mean over the kept negatives. Positive BCE 0.126928, 1.313262, 0.474077 (mean
# 0.638089); negative BCE 0.693147, 1.313262, 0.126928 (mean 0.711112).
@pytest.mark.parametrize("rate, n_dropped, expected", [
    # nothing dropped: 0.638089 + 0.711112, normal's BCE
    (0.0, 0, 1.349201),
    # int(0.9 * 6) = 5 kept: the positive of logit -1 goes; (0.126928 + 0.474077) / 2 + 0.711112
    (0.1, 1, 1.011615),
    # int(0.8 * 6) = 4 kept: positives -1 and 0.5 go (the negative of logit 1, same loss, stays)
    (0.2, 2, 0.838040),
    # every positive goes: their term is 0, the negatives' mean stays
    (0.5, 3, 0.711112),
    # negatives too; ties among them keep the earlier ones: (0.693147 + 1.313262) / 2
    (0.6, 4, 1.003204),
])
def test_tce_loss_by_hand(rate, n_dropped, expected):
    loss, n = truncated_bce(POS, NEG, rate)
    assert n == n_dropped
    assert loss.item() == pytest.approx(expected, abs=2e-6)


def test_tce_at_rate_zero_is_the_base_bce_and_sum_scale():
    assert torch.equal(truncated_bce(POS, NEG, 0.0)[0], bce_loss(POS, NEG))
    assert torch.equal(truncated_bce(POS, NEG, 0.0, scale="sum")[0], bce_loss(POS, NEG, reduction="sum"))
    # the authors' CDAE recipe sums: 0.126928 + (0.693147 + 1.313262 + 0.126928)
    assert truncated_bce(POS, NEG, 0.2, scale="sum")[0].item() == pytest.approx(2.260265, abs=2e-6)
    with pytest.raises(ValueError, match="scale"):
        truncated_bce(POS, NEG, 0.2, scale="median")


def test_tce_gradient_reaches_only_kept_samples():
    pos, neg = POS.clone().requires_grad_(), NEG.clone().requires_grad_()
    truncated_bce(pos, neg, 0.2)[0].backward()
    # kept: positive 0 (alone in its mean) and all negatives (mean of 3)
    # d/dz softplus(-z) = -sigmoid(-2) = -0.119203; negatives sigmoid(z) / 3
    assert pos.grad.tolist() == pytest.approx([-0.119203, 0.0, 0.0], abs=1e-6)
    assert neg.grad.reshape(-1).tolist() == pytest.approx([0.166667, 0.243686, 0.039734], abs=1e-6)


# the option loss_scale "denoisingrec" (the authors' code as it is): one mean over what is kept
@pytest.mark.parametrize("rate, n_dropped, expected", [
    # int((1 - 0) * 6) = 6 kept: (0.126928 + 1.313262 + 0.474077 + 0.693147 + 1.313262 + 0.126928) / 6
    (0.0, 0, 0.674601),
    # int(0.9 * 6) = 5 kept: the positive of logit -1 (loss 1.313262) goes; 2.734342 / 5
    (0.1, 1, 0.546868),
    # int(0.8 * 6) = 4 kept: positives -1 and 0.5 go, although the negative of logit 1 has the same
    # loss as the positive of logit -1 (negatives rank with loss * label = 0):
    # (0.126928 + 0.693147 + 1.313262 + 0.126928) / 4
    (0.2, 2, 0.565066),
    # int(0.5 * 6) = 3 kept: every positive goes, the mean of the three negatives
    (0.5, 3, 0.711112),
    # int(0.4 * 6) = 2 kept: negatives too; ties among them keep the earlier ones (0, 1)
    (0.6, 4, 1.003204),
])
def test_tce_denoisingrec_loss_by_hand(rate, n_dropped, expected):
    loss, n = truncated_bce(POS, NEG, rate, scale="single_mean")
    assert n == n_dropped
    assert loss.item() == pytest.approx(expected, abs=2e-6)


def test_tce_denoisingrec_two_negatives_per_positive():
    pos = torch.tensor([1.0, -1.0])                  # BCE 0.313262, 1.313262
    neg = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])   # BCE 0.693147, 2.126928, 0.313262, 3.048587
    # int(0.85 * 6) = 5 kept: the positive of logit -1 goes; (0.313262 + 6.181924) / 5
    loss, n = truncated_bce(pos, neg, 0.15, scale="single_mean")
    assert n == 1 and loss.item() == pytest.approx(1.299037, abs=2e-6)
    # int(0.75 * 6) = int(4.5) = 4 kept: both positives go (rate >= 1/3 would be needed without the
    # truncation of int); the mean of the four negatives 6.181924 / 4
    loss, n = truncated_bce(pos, neg, 0.25, scale="single_mean")
    assert n == 2 and loss.item() == pytest.approx(1.545481, abs=2e-6)
    # the default scale: 0.313262 + 6.181924 / 4 (one positive kept, the four negatives)
    loss, n = truncated_bce(pos, neg, 0.15)
    assert n == 1 and loss.item() == pytest.approx(1.858743, abs=2e-6)


def test_tce_denoisingrec_is_half_of_normal_at_rate_zero_and_keeps_one_sample():
    # one mean over 2B samples = (mean_pos + mean_neg) / 2 with one negative per positive
    loss, _ = truncated_bce(POS, NEG, 0.0, scale="single_mean")
    assert loss.item() == pytest.approx(bce_loss(POS, NEG.reshape(-1)).item() / 2, rel=1e-6)
    # (1 - 0.9) * 2 = 0.2 samples: the original's mean of nothing is NaN; here the smallest is kept
    for scale in ("single_mean", "mean"):
        loss, n = truncated_bce(torch.tensor([0.5]), torch.tensor([[1.0]]), 0.9, scale=scale)
        assert n == 1 and loss.item() == pytest.approx(1.313262, abs=2e-6)


def test_tce_denoisingrec_gradient_reaches_only_kept_samples():
    pos, neg = POS.clone().requires_grad_(), NEG.clone().requires_grad_()
    truncated_bce(pos, neg, 0.2, scale="single_mean")[0].backward()
    # kept: positive 0 and all negatives; d/dz softplus(-z) / 4 = -sigmoid(-2) / 4 = -0.029801
    assert pos.grad.tolist() == pytest.approx([-0.029801, 0.0, 0.0], abs=1e-6)
    # negatives: sigmoid(z) / 4 = 0.125, 0.182765, 0.029801
    assert neg.grad.reshape(-1).tolist() == pytest.approx([0.125, 0.182765, 0.029801], abs=1e-6)


def test_tce_published_drop_rate_schedule():
    # their defaults: drop_rate 0.2, num_gradual 30000, exponent 1: linspace(0, 0.2, 30000)[t]
    sched = [drop_rate_schedule(t, 0.2, 30000) for t in (0, 1, 15000, 29999, 30000, 10 ** 6)]
    assert sched == pytest.approx([0.0, 0.2 / 29999, 0.2 * 15000 / 29999, 0.2, 0.2, 0.2], rel=1e-12)
    assert sched[2] == pytest.approx(0.100003, abs=1e-6)
    # num_gradual 10: 0.3 * t / 9 -> 0, 0.166667 (t=5), 0.3 from t=9 on
    assert [drop_rate_schedule(t, 0.3, 10) for t in (0, 5, 9, 10, 50)] == pytest.approx(
        [0.0, 0.166667, 0.3, 0.3, 0.3], abs=1e-6)
    assert [drop_rate_schedule(t, 0.3, 10) for t in range(10)] == pytest.approx(
        np.linspace(0, 0.3, 10).tolist(), rel=1e-12)
    # exponent 2: the ramp ends at 0.2 ** 2 = 0.04, then the rate jumps to 0.2 (their code)
    assert [drop_rate_schedule(t, 0.2, 5, exponent=2) for t in range(7)] == pytest.approx(
        [0.0, 0.01, 0.02, 0.03, 0.04, 0.2, 0.2], abs=1e-12)
    # num_gradual 1: linspace(0, x, 1) = [0], then the full rate
    assert [drop_rate_schedule(t, 0.2, 1) for t in (0, 1, 2)] == [0.0, 0.2, 0.2]


def test_tce_method_published_by_default():
    split = _tiny_split()
    tce = _method("tce", split, drop_rate=0.3, num_gradual=10)
    assert tce.form == "published" and tce.exponent == 1.0
    assert [tce.rate_at(t) for t in (0, 5, 9, 50)] == pytest.approx([0.0, 0.166667, 0.3, 0.3], abs=1e-6)
    assert REC_METHODS.get("tce").defaults == {"drop_rate": 0.2, "num_gradual": 30000, "exponent": 1.0,
                                               "tce_form": "published", "loss_scale": "deca"}
    assert tce.scale == "mean"
    users, pos = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 0, 0])
    neg = torch.tensor([[5], [6], [7], [4]])
    loss, parts = tce.batch_loss(users, pos, neg, step=9)
    p, n = pair_logits(tce.f, users, pos, neg)
    assert loss.item() == pytest.approx(truncated_bce(p, n, 0.3)[0].item(), rel=1e-6)
    assert parts["tce/drop_rate"] == pytest.approx(0.3)
    authors = _method("tce", split, drop_rate=0.3, num_gradual=10, loss_scale="denoisingrec")
    assert authors.scale == "single_mean"
    got, _ = authors.batch_loss(users, pos, neg, step=9)
    assert got.item() == pytest.approx(truncated_bce(p, n, 0.3, scale="single_mean")[0].item(), rel=1e-6)
    assert _method("tce", split, backbone="cdae").scale == "sum"  # the authors' CDAE recipe


def test_tce_positives_option_keeps_the_earlier_values():
    # the earlier `tce` (issue 3): schedule drop_rate * min(t / num_gradual, 1)
    tce = _method("tce", _tiny_split(), drop_rate=0.3, num_gradual=10, tce_form="positives")
    assert [tce.rate_at(t) for t in (0, 5, 10, 50)] == pytest.approx([0.0, 0.15, 0.3, 0.3])
    assert linear_drop_rate(5, 0.3, 10) == pytest.approx(0.15)
    # positives 3, -2, 0, 1 (BCE 0.048587, 2.126928, 0.693147, 0.313262), negatives all logit 0:
    # drop floor(0.5 * 4) = 2 positives (-2 and 0); mean of kept positives + mean of negatives
    # (0.048587 + 0.313262) / 2 + 0.693147 = 0.874072
    pos, neg = torch.tensor([3.0, -2.0, 0.0, 1.0]), torch.zeros(4, 1)
    loss, n = truncated_bce_positives(pos, neg, 0.5)
    assert n == 2 and loss.item() == pytest.approx(0.874072, abs=2e-6)
    # the hand batch above: floor(0.2 * 3) = 0 dropped, i.e. normal's BCE
    # (0.126928 + 1.313262 + 0.474077) / 3 + (0.693147 + 1.313262 + 0.126928) / 3 = 1.349201
    loss, n = truncated_bce_positives(POS, NEG, 0.2)
    assert n == 0 and loss.item() == pytest.approx(1.349201, abs=2e-6)
    users, items = torch.tensor([0, 1]), torch.tensor([0, 0])
    negs = torch.tensor([[5], [6]])
    p, q = pair_logits(tce.f, users, items, negs)
    got, _ = tce.batch_loss(users, items, negs, step=10)
    assert got.item() == pytest.approx(truncated_bce_positives(p, q, 0.3)[0].item(), rel=1e-6)


def test_tce_rejects_bad_options():
    split = _tiny_split()
    with pytest.raises(ValueError, match="tce_form"):
        _method("tce", split, tce_form="batch")
    with pytest.raises(ValueError, match="exponent"):
        _method("tce", split, exponent=0)
    with pytest.raises(ValueError, match="exponent"):
        _method("tce", split, tce_form="positives", exponent=2)
    with pytest.raises(ValueError, match="num_gradual"):
        _method("tce", split, num_gradual=0)
    with pytest.raises(ValueError, match="loss_scale"):
        _method("tce", split, loss_scale="single")
    with pytest.raises(ValueError, match="loss_scale"):
        _method("tce", split, tce_form="positives", loss_scale="denoisingrec")


# ------------------------------------------------------------------------------------- R-CE
def test_rce_loss_by_hand():
    # beta 0.5: weights sigmoid(z)^0.5 on positives 2, -1, 0.5: 0.938508, 0.518596, 0.788961;
    # (1 - sigmoid(z))^0.5 on negatives 0, 1, -2: 0.707107, 0.518596, 0.938508
    # mean_pos (0.126928 * 0.938508 + 1.313262 * 0.518596 + 0.474077 * 0.788961) / 3 = 0.391401
    # mean_neg (0.693147 * 0.707107 + 1.313262 * 0.518596 + 0.126928 * 0.938508) / 3 = 0.430101
    assert reweighted_bce(POS, NEG, 0.5).item() == pytest.approx(0.821502, abs=2e-6)
    # the authors' single mean over the 6 samples: 2.464507 / 6; the sum (CDAE recipe)
    assert reweighted_bce(POS, NEG, 0.5, scale="single_mean").item() == pytest.approx(0.410751, abs=2e-6)
    assert reweighted_bce(POS, NEG, 0.5, scale="sum").item() == pytest.approx(2.464507, abs=2e-6)
    # beta 0: every weight is 1, normal's BCE exactly
    assert torch.equal(reweighted_bce(POS, NEG, 0.0), bce_loss(POS, NEG))
    assert reweighted_bce(POS, NEG, 0.0, scale="single_mean").item() == pytest.approx(0.674601, abs=2e-6)
    with pytest.raises(ValueError, match="beta"):
        reweighted_bce(POS, NEG, -0.1)


def test_rce_weights_carry_no_gradient():
    pos, neg = POS.clone().requires_grad_(), NEG.clone().requires_grad_()
    reweighted_bce(pos, neg, 0.5).backward()
    # d/dz of w * softplus(-z) with w detached: -w * sigmoid(-z) / 3; negatives w * sigmoid(z) / 3
    assert pos.grad.tolist() == pytest.approx([-0.037291, -0.126375, -0.099288], abs=1e-6)
    assert neg.grad.reshape(-1).tolist() == pytest.approx([0.117851, 0.126375, 0.037291], abs=1e-6)


def test_rce_method():
    split = _tiny_split()
    assert REC_METHODS.get("rce").defaults == {"beta": 0.2, "loss_scale": "deca"}  # their --alpha 0.2
    rce = _method("rce", split)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([1, 0, 0]), torch.tensor([[5], [6], [7]])
    p, n = pair_logits(rce.f, users, pos, neg)
    loss, parts = rce.batch_loss(users, pos, neg, step=0)
    assert loss.item() == pytest.approx(reweighted_bce(p, n, 0.2).item(), rel=1e-6)
    assert loss.item() != pytest.approx(bce_loss(p, n).item(), rel=1e-3)
    authors = _method("rce", split, loss_scale="denoisingrec")
    got, _ = authors.batch_loss(users, pos, neg, step=0)
    assert got.item() == pytest.approx(reweighted_bce(p, n, 0.2, scale="single_mean").item(), rel=1e-6)
    with pytest.raises(ValueError, match="beta"):
        _method("rce", split, beta=-1)
    with pytest.raises(ValueError, match="loss_scale"):
        _method("rce", split, loss_scale="authors")


# ------------------------------------------------------------------------------------- WBPR
def test_wbpr_user_weights_on_a_tiny_split():
    split = _tiny_split()
    # |D+| = 7 positives over |U+| = 3 users: w_u = (7 / 3) / |I_u^+|, 0 for user 3 (no positives)
    w = wbpr_user_weights(split.train, split.n_users)
    assert w.tolist() == pytest.approx([7 / 12, 7 / 6, 7 / 3, 0.0])
    assert w.tolist() == pytest.approx([0.583333, 1.166667, 2.333333, 0.0], abs=1e-6)
    # mean 1 over the training positives, and every user's positives weigh the same in total
    per_row = w[split.train[:, 0]]
    assert per_row.mean() == pytest.approx(1.0)
    assert np.bincount(split.train[:, 0], weights=per_row).tolist() == pytest.approx([7 / 3] * 3)
    method = _method("wbpr", split, wbpr_form="user_weighted")
    assert method.form == "user_weighted" and method.sampler == "popularity"
    assert method.user_weights.tolist() == pytest.approx([7 / 12, 7 / 6, 7 / 3, 0.0])
    assert "user_weights" not in method.state_dict()


def test_weighted_bpr_loss_by_hand():
    # users 0 (w 7/12) and 2 (w 7/3); s_ui - s_uj = 2 - 0 and 0 - 1
    # terms softplus(-2) = 0.126928 and softplus(1) = 1.313262
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([[0.0], [1.0]])
    weights = torch.tensor([7 / 12, 7 / 3])
    # (7/12 * 0.126928 + 7/3 * 1.313262) / 2 = (0.074041 + 3.064277) / 2
    assert bpr_loss(pos, neg, weights).item() == pytest.approx(1.569159, abs=2e-6)
    # unweighted (the earlier `wbpr`, MyMediaLite's code): (0.126928 + 1.313262) / 2
    assert bpr_loss(pos, neg).item() == pytest.approx(0.720095, abs=2e-6)
    # two negatives per positive: each pair carries its positive's weight, divided by B * r = 4
    # pairs 2-0, 2-1 (w 7/12), 0-1, 0-3 (w 7/3): softplus(-2) 0.126928, softplus(-1) 0.313262,
    # softplus(1) 1.313262, softplus(3) 3.048587
    neg2 = torch.tensor([[0.0, 1.0], [1.0, 3.0]])
    expected = (7 / 12 * (0.126928 + 0.313262) + 7 / 3 * (1.313262 + 3.048587)) / 4
    assert bpr_loss(pos, neg2, weights).item() == pytest.approx(expected, abs=2e-6)
    assert expected == pytest.approx(2.608606, abs=2e-6)
    # summed (the authors' CDAE): B * r times the mean; anything else is refused
    assert bpr_loss(pos, neg2, weights, reduction="sum").item() == pytest.approx(4 * expected, abs=8e-6)
    with pytest.raises(ValueError, match="reduction 'max'"):
        bpr_loss(pos, neg, reduction="max")


def test_wbpr_sums_its_loss_on_the_authors_cdae():
    """On CDAE (L2 ``l2 * sum ||p||``, normal's BCE summed) WBPR's BPR is summed too; on GMF the mean."""
    train = np.array([[0, 0], [0, 1], [1, 2], [2, 3], [2, 4], [3, 1]])
    split = RecSplit("tiny", 4, 6, train, train[:2], train[:2], train[2:4], train[2:4], ks=(3,))
    for backbone, reduce in (("cdae", "sum"), ("gmf", "mean")):
        t = RecTrainer({"backbone": backbone, "method": "wbpr", "max_epochs": 1, "batch_size": 8,
                        "seed": 0, "device": "cpu", "l2": 0.0, "pretrain_cache": "off"}, split=split)
        assert not t.row_batching
        users, pos, neg = next(iter(t.batches()))
        torch.manual_seed(1)
        loss, _ = t.method.batch_loss(users, pos, neg, 0)
        torch.manual_seed(1)
        with torch.no_grad():
            want = bpr_loss(*pair_logits(t.method.f, users, pos, neg), reduction=reduce)
        assert loss.item() == pytest.approx(want.item(), rel=1e-6)


def test_wbpr_method_mymedialite_default_and_options():
    split = _tiny_split()
    users, pos = torch.tensor([0, 2, 1]), torch.tensor([1, 0, 1])
    neg = torch.tensor([[4], [5], [6]])
    default = _method("wbpr", split)
    assert REC_METHODS.get("wbpr").defaults == {"wbpr_form": "mymedialite"}
    assert default.form == "mymedialite" and default.user_weights is None and default.sampler == "popularity"
    p, n = pair_logits(default.f, users, pos, neg)
    loss, parts = default.batch_loss(users, pos, neg, step=0)
    # plain BPR: (softplus(-(p_b - n_b)) summed) / 3, no weight
    by_hand = np.mean([np.log1p(np.exp(-(a - b))) for a, b in zip(p.tolist(), n.reshape(-1).tolist())])
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    assert float(parts["bpr"]) == pytest.approx(loss.item())
    weighted = _method("wbpr", split, wbpr_form="user_weighted")
    got, _ = weighted.batch_loss(users, pos, neg, step=0)  # same seed, same backbone weights
    assert got.item() == pytest.approx(bpr_loss(p, n, torch.tensor([7 / 12, 7 / 3, 7 / 6])).item(), rel=1e-6)
    assert got.item() != pytest.approx(loss.item(), rel=1e-3)
    unweighted = _method("wbpr", split, wbpr_form="unweighted")
    assert unweighted.user_weights is None
    assert unweighted.batch_loss(users, pos, neg, step=0)[0].item() == pytest.approx(loss.item(), rel=1e-6)
    with pytest.raises(ValueError, match="wbpr_form"):
        _method("wbpr", split, wbpr_form="popularity")
    with pytest.raises(ValueError, match="renamed 'user_weighted'"):
        _method("wbpr", split, wbpr_form="published")


def test_wbpr_mymedialite_draws_pairs_with_replacement():
    split = _tiny_split()
    default, weighted = _method("wbpr", split), _method("wbpr", split, wbpr_form="user_weighted")
    n = 10_000
    order = default.epoch_order(n, np.random.default_rng(0))
    # |D+| uniform draws with replacement: about n (1 - 1/e) = 6321 distinct pairs, each equally likely
    assert len(order) == n and order.min() >= 0 and order.max() < n
    assert abs(len(np.unique(order)) - n * (1 - np.exp(-1))) < 150
    counts = np.bincount(default.epoch_order(70_000, np.random.default_rng(1)) % 7, minlength=7)
    assert np.abs(counts / counts.sum() - 1 / 7).max() < 0.01
    # the options go through the positives once each (a permutation)
    assert np.array_equal(np.sort(weighted.epoch_order(n, np.random.default_rng(0))), np.arange(n))


def test_wbpr_negatives_proportional_to_popularity_among_non_positives():
    from deca_tune.data.sampling import SAMPLERS

    # item popularity 1, 3, 2, 1 (items 0-3); user 0 has item 0: P(j) = 3/6, 2/6, 1/6 for j = 1, 2, 3
    train = np.array([[0, 0], [1, 1], [1, 2], [2, 1], [2, 2], [2, 3], [3, 1]])
    held = np.array([[0, 4], [1, 4], [2, 4], [3, 4]])
    split = RecSplit("pop", 4, 5, train, held, held, held, held, ks=(3,))
    sampler = SAMPLERS.get(_method("wbpr", split).sampler)(split)
    neg = sampler.sample(np.zeros(60_000, dtype=np.int64), 1, np.random.default_rng(0)).reshape(-1)
    freq = np.bincount(neg, minlength=5) / len(neg)
    assert freq.tolist() == pytest.approx([0.0, 0.5, 1 / 3, 1 / 6, 0.0], abs=0.01)
