"""Each image method trains each backbone for one step; method-specific mechanics."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from deca_tune.data.image.split import build_image_split
from deca_tune.methods import IMAGE_METHODS
from deca_tune.tasks import make_spec

METHODS = ["normal", "itlm", "mwnet", "deca_p"]
BACKBONES = ["resnet32", "convnet", "mlp", "inception"]


@pytest.fixture(scope="module")
def split():
    return build_image_split("synthetic-images", seed=0, noise_rate=0.4, valid_size=40, meta_per_class=3,
                             dataset_options={"n_train": 200, "n_test": 20, "image_size": 16})


def _spec(method, backbone, **kw):
    return make_spec("image", dataset="synthetic-images", method=method, backbone=backbone, seed=0, **kw)


def _make(method, backbone, split, **kw):
    m = IMAGE_METHODS.get(method)(_spec(method, backbone, **kw), split)
    if method == "deca_p":
        # stand-in for the pre-training loop (tested in test_image_trainer): a differently seeded net
        m.prepare(lambda overrides: m.make_backbone(backbone, seed=overrides["seed"]))
    return m


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("method", METHODS)
def test_one_training_step(method, backbone, split):
    m = _make(method, backbone, split, T1=1)
    m.train()
    opt = torch.optim.SGD(m.trainable_parameters(), lr=0.1)
    x = m.inputs(split.train_x[:8])
    y = split.train_y_noisy[:8]
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    for epoch in ((0, 1) if method == "deca_p" else (0,)):  # deca_p: Eq. 22 at epoch 0 (< T1), Eq. 24 at 1
        loss, parts = m.batch_loss(x, y, step=epoch, epoch=epoch, lr=0.1)
        assert loss.dim() == 0 and torch.isfinite(loss)
        assert all(isinstance(v, float) for v in parts.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    changed = {n for n, p in m.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("f.") for n in changed)
    assert not any(n.startswith("f_prime.") for n in changed)
    if method == "mwnet":
        assert any(n.startswith("vnet.") for n in changed)
    if method == "deca_p":
        assert any(n.startswith("h.") for n in changed)
    scores = m.clean_scores(x, y)
    assert scores.shape == (8,) and torch.isfinite(scores).all()


def _losses(m, split):
    with torch.no_grad():
        m.eval()
        return F.cross_entropy(m.f(m.inputs(split.train_x, augment=False)), split.train_y_noisy, reduction="none")


def test_itlm_warm_keeps_the_smallest_losses_of_the_current_model(split):
    m = _make("itlm", "mlp", split, trim_ratio=0.25, round_epochs=2, itlm_form="warm")
    assert torch.equal(m.train_indices(), torch.arange(len(split.train_y_noisy)))
    m.on_epoch_start(1)  # not a round boundary
    assert len(m.train_indices()) == len(split.train_y_noisy)
    before = copy.deepcopy(m.f.state_dict())
    m.on_epoch_start(2)
    kept = m.train_indices()
    losses = _losses(m, split)
    n_keep = round(0.75 * len(losses))
    assert len(kept) == n_keep
    assert losses[kept].max() <= torch.sort(losses).values[n_keep - 1] + 1e-6
    # warm: no re-initialisation, no schedule restart
    assert all(torch.equal(v, m.f.state_dict()[k]) for k, v in before.items())
    assert not m.restart_schedule and m.schedule_horizon(2, 10) == 10


def test_itlm_faithful_selects_with_the_best_checkpoint_of_the_round_then_reinitialises(split):
    m = _make("itlm", "mlp", split, trim_ratio=0.25, round_epochs=2, itlm_form="faithful")
    assert m.form == "faithful"
    init = copy.deepcopy(m.f.state_dict())
    # epoch 0 ends with weights A (valid 0.5), epoch 1 with weights B (valid 0.3): A is the round's best
    a = m.make_backbone("mlp", seed=11).state_dict()
    b = m.make_backbone("mlp", seed=12).state_dict()
    m.f.load_state_dict(a)
    m.on_epoch_end(0, {"valid/accuracy": 0.5})
    m.f.load_state_dict(b)
    m.on_epoch_end(1, {"valid/accuracy": 0.3})
    m.f.load_state_dict(a)
    want = m.select(_losses(m, split))
    m.f.load_state_dict(b)
    not_want = m.select(_losses(m, split))
    assert not torch.equal(want, not_want)  # the test can tell A's subset from B's
    m.on_epoch_start(2)
    assert torch.equal(m.train_indices(), want)
    assert len(want) == round(0.75 * len(split.train_y_noisy))
    # re-initialised: a fresh draw for round 1, neither A, B nor the round-0 initialisation
    fresh = m.make_backbone("mlp", seed=0 + 7_000_003).state_dict()
    for k, v in m.f.state_dict().items():
        assert torch.equal(v, fresh[k]), k
    assert not torch.equal(m.f.state_dict()["body.1.weight"], init["body.1.weight"])
    assert m.restart_schedule and m.round == 1 and m.round_best_state is None
    # the schedule spans the round (the last round only what is left)
    assert m.schedule_horizon(2, 5) == 2 and m.schedule_horizon(4, 5) == 1
    with pytest.raises(ValueError, match="itlm_form"):
        _make("itlm", "mlp", split, itlm_form="cold")


def test_mwnet_batchnorm_stats_see_exactly_one_update(split):
    m = _make("mwnet", "resnet32", split)
    m.train()
    x = m.inputs(split.train_x[:8])
    ref = copy.deepcopy(m.f).train()
    with torch.no_grad():
        ref(x)  # one ordinary training-mode forward
    loss, parts = m.batch_loss(x, split.train_y_noisy[:8], step=0, epoch=0, lr=0.1)
    for (name, b), (_, rb) in zip(m.f.named_buffers(), ref.named_buffers()):
        assert torch.allclose(b, rb), name
    assert 0.0 < parts["mwnet/weight_mean"] < 1.0


def test_deca_p_trains_h_only_for_the_attended_class(split):
    m = _make("deca_p", "convnet", split, T1=1)
    m.train()
    x = m.inputs(split.train_x[:16])
    y = split.train_y_noisy[:16]
    for epoch in (0, 1):  # Eq. 22 and Eq. 24 (stop-gradient on h for classes != k)
        m.zero_grad()
        loss, _ = m.batch_loss(x, y, step=13, epoch=epoch, lr=0.1)  # k = 13 mod 10 = 3
        loss.backward()
        g = m.h.class_proj.weight.grad  # [hidden, C]: column c = candidate true class c
        assert g[:, 3].abs().sum() > 0
        assert torch.count_nonzero(torch.cat([g[:, :3], g[:, 4:]], dim=1)) == 0
        assert all(p.grad is None for p in m.f_prime.parameters())
    assert not m.f_prime.training  # the frozen prior stays in eval mode
