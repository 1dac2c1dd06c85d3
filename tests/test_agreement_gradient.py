"""Issue 22, part 5: DeCA / DeCA(p) log per epoch how much of f's gradient the agreement KL gives
(``deca/grad_*``), without changing what training computes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deca_tune.losses.deca import deca_loss, deca_loss_parts, gradient_share
from deca_tune.tasks import get_task
from deca_tune.training.rec_trainer import RecTrainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"n_users": 40, "n_items": 30, "dim": 4, "like_rate": 0.2, "seed": 3}
GRAD_KEYS = ("deca/grad_kl_share", "deca/grad_norm_kl", "deca/grad_norm_likelihood",
             "deca/grad_norm_total")


def _spec(method: str, backbone: str, cache: str, **kw) -> dict:
    return get_task("rec").only_known(
        {"dataset": "synthetic", "dataset_options": TINY, "backbone": backbone, "method": method,
         "max_epochs": 3, "batch_size": 64, "device": "cpu", "pretrain_cache": cache, **kw})


def _run(spec: dict) -> tuple[list[dict], dict]:
    trainer = RecTrainer(spec)
    epochs = [trainer.train_epoch() for _ in range(int(spec["max_epochs"]))]
    return epochs, {k: v.clone() for k, v in trainer.method.state_dict().items()}


@pytest.mark.parametrize("method, backbone", [("deca", "gmf"), ("deca_p", "gmf"), ("deca", "cdae"),
                                              ("deca_p-dp", "neumf")])
def test_logging_changes_nothing(method, backbone, tmp_path) -> None:
    """Same spec with and without the probe: every loss, metric and weight bit for bit (CDAE:
    dropout draws from the torch RNG; NeuMF: dropout too)."""
    on, w_on = _run(_spec(method, backbone, str(tmp_path), agreement_grad=True))
    off, w_off = _run(_spec(method, backbone, str(tmp_path), agreement_grad=False))
    timing = ("seconds",)
    for a, b in zip(on, off):
        assert set(a) - set(b) == {k for k in a if k.startswith("deca/grad_")}
        assert not any(k.startswith("deca/grad_") for k in b)
        same = {k: a[k] for k in b if not k.endswith(timing)}
        assert same == {k: b[k] for k in same}
    assert all(torch.equal(w_on[k], w_off[k]) for k in w_on)
    for m in on:
        for key in GRAD_KEYS:
            assert math.isfinite(m[key]) and m[key] >= 0
        assert 0 <= m["deca/grad_kl_share"] <= 1
        subs = ("dp",) if method.endswith("-dp") else ("dp", "dn")
        assert {k for k in m if k.startswith("deca/grad_kl_share_")} == {f"deca/grad_kl_share_{s}" for s in subs}
        # triangle inequality: |g_kl + g_lik| <= |g_kl| + |g_lik|
        assert m["deca/grad_norm_total"] <= m["deca/grad_norm_kl"] + m["deca/grad_norm_likelihood"] + 1e-9


def test_probe_only_for_deca(tmp_path) -> None:
    m = RecTrainer(_spec("normal", "gmf", str(tmp_path), max_epochs=1)).train_epoch()
    assert not any(k.startswith("deca/grad_") for k in m)


def test_parts_sum_to_the_loss_and_the_share_by_hand() -> None:
    gen = torch.Generator().manual_seed(0)
    f_pos, f_neg, g_pos, g_neg, n_pos, n_neg = (torch.rand(5, generator=gen) * 0.8 + 0.1 for _ in range(6))
    for sub in ("dp", "dn"):
        kw = dict(alpha=0.7, c_dp=3.0, c_dn=2.0, ratio=2.0)
        loss, _ = deca_loss(f_pos, f_neg, g_pos, g_neg, n_pos, n_neg, sub, **kw)
        a, lik = deca_loss_parts(f_pos, f_neg, g_pos, g_neg, n_pos, n_neg, sub, **kw)
        assert float(a + lik) == pytest.approx(float(loss), rel=1e-6)
    # a parameter w with agreement = 3 w and likelihood = -4 w (gradients 3 and -4): norms 3, 4,
    # total |3 - 4| = 1, share 3 / 7; no .grad written
    w = torch.tensor(1.5, requires_grad=True)
    got = gradient_share(3 * w, -4 * w, [w])
    assert got == pytest.approx({"agreement": 3.0, "likelihood": 4.0, "total": 1.0, "share": 3 / 7})
    assert w.grad is None
    # an agreement that does not depend on the parameter: share 0
    assert gradient_share(torch.tensor(2.0, requires_grad=True) * 1.0, -4 * w, [w])["share"] == 0.0


def test_on_by_default_and_off_by_the_spec_key(tmp_path) -> None:
    spec = _spec("deca", "gmf", str(tmp_path), max_epochs=1)
    assert "agreement_grad" not in spec  # the method's default applies
    assert set(GRAD_KEYS) <= set(RecTrainer(spec).train_epoch())
    m = RecTrainer({**spec, "agreement_grad": False}).train_epoch()
    assert np.isfinite(m["loss"]) and not any(k.startswith("deca/grad_") for k in m)


@pytest.mark.parametrize("backbone", ["resnet32", "mlp"])
def test_image_deca_p_logging_changes_nothing(backbone, tmp_path) -> None:
    """Image DeCA(p): with and without the probe, bit for bit over 2 epochs (ResNet-32: its
    batch-norm statistics must come back; augmentation draws from its own generator), across
    Eq. 22 (epoch 0) and Eq. 24 (epoch 1, T1 = 1)."""
    from deca_tune.training.image_trainer import ImageTrainer

    def run(flag: bool) -> tuple[list[dict], dict]:
        spec = get_task("image").only_known(dict(
            task="image", dataset="synthetic-images", backbone=backbone, method="deca_p", seed=0,
            dataset_options={"n_train": 200, "n_test": 40, "image_size": 16}, max_epochs=2,
            lr=0.05, batch_size=50, valid_size=40, meta_per_class=3, noise_rate=0.4, device="cpu",
            T1=1, augment=True, pretrain_overrides={"max_epochs": 1}, pretrain_cache=str(tmp_path),
            agreement_grad=flag))
        trainer = ImageTrainer(spec)
        epochs = [trainer.train_epoch() for _ in range(2)]
        return epochs, {k: v.clone() for k, v in trainer.method.state_dict().items()
                        if isinstance(v, torch.Tensor)}

    on, w_on = run(True)
    off, w_off = run(False)
    for a, b in zip(on, off):
        assert set(a) - set(b) == set(GRAD_KEYS)
        same = {k: a[k] for k in b if not k.endswith("seconds")}
        assert same == {k: b[k] for k in same}
        if backbone == "mlp":  # (this tiny ResNet's gradients vanish: norms 0, share NaN)
            assert 0 < a["deca/grad_kl_share"] < 1 and a["deca/grad_norm_kl"] > 0
    assert all(torch.equal(w_on[k], w_off[k]) for k in w_on)


@pytest.mark.parametrize("backbone", ["cdae", "gmf"])
def test_probe_on_a_subset_of_the_batch(backbone, tmp_path, monkeypatch) -> None:
    """The probe reads at most PROBE_PAIRS positives (rows batching: whole users), and still
    changes nothing."""
    import deca_tune.training.rec_trainer as rt

    monkeypatch.setattr(rt, "PROBE_PAIRS", 16)
    seen = []
    from deca_tune.methods.rec.deca import DeCABase

    original = DeCABase.agreement_gradient

    def spy(self, users, pos, neg, neg_users=None):
        seen.append((users.clone(), neg_users))
        return original(self, users, pos, neg, neg_users)

    monkeypatch.setattr(DeCABase, "agreement_gradient", spy)
    on, w_on = _run(_spec("deca", backbone, str(tmp_path), max_epochs=2, agreement_grad=True))
    off, w_off = _run(_spec("deca", backbone, str(tmp_path), max_epochs=2, agreement_grad=False))
    assert len(seen) == 2
    for users, neg_users in seen:
        if backbone == "gmf":
            assert len(users) == 16
        else:  # whole users: every positive of the users among the first 16
            assert 16 <= len(users) and set(neg_users.tolist()) <= set(users.tolist())
            assert len(users.unique()) < 40
    for a, b in zip(on, off):
        same = {k: a[k] for k in b if not k.endswith("seconds")}
        assert same == {k: b[k] for k in same}
    assert all(torch.equal(w_on[k], w_off[k]) for k in w_on)
