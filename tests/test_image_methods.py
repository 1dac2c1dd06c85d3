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


def test_itlm_keeps_the_smallest_losses(split):
    m = _make("itlm", "mlp", split, trim_ratio=0.25, round_epochs=2)
    assert torch.equal(m.train_indices(), torch.arange(len(split.train_y_noisy)))
    m.on_epoch_start(1)  # not a round boundary
    assert len(m.train_indices()) == len(split.train_y_noisy)
    m.on_epoch_start(2)
    kept = m.train_indices()
    with torch.no_grad():
        m.eval()
        losses = F.cross_entropy(m.f(m.inputs(split.train_x, augment=False)), split.train_y_noisy, reduction="none")
    n_keep = round(0.75 * len(losses))
    assert len(kept) == n_keep
    assert losses[kept].max() <= torch.sort(losses).values[n_keep - 1] + 1e-6


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
