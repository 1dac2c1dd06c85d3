"""Denoising methods for recommendation (issue 3): every method x backbone trains; method specifics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deca_tune.data import load_dataset
from deca_tune.data.sampling import SAMPLERS
from deca_tune.methods import REC_METHODS
from deca_tune.methods.base import pretrain_overrides
from deca_tune.training.pretrain import pretrain_key, pretrain_spec
from deca_tune.methods.scores import training_positive_scores
from deca_tune.tasks import get_task
from deca_tune.training.rec_trainer import RecTrainer, row_batches

METHODS = ["normal", "deca", "deca_p", "deca-dp", "deca-dn", "deca_p-dp", "deca_p-dn", "tce", "rce", "wbpr",
           "ensemble"]
BACKBONES = ["mf", "gmf", "neumf", "cdae", "lightgcn"]
TINY = {"n_users": 40, "n_items": 30, "dim": 4, "like_rate": 0.2, "seed": 3}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("pretrained"))


def tiny_spec(method: str, backbone: str, cache: str, **kw) -> dict:
    return get_task("rec").only_known(
        {"dataset": "synthetic", "dataset_options": TINY, "backbone": backbone, "method": method,
         "max_epochs": 1, "batch_size": 64, "device": "cpu", "pretrain_cache": cache,
         "drop_rate": 0.2, "num_gradual": 2, **kw})


def test_all_methods_registered():
    assert set(METHODS) <= set(REC_METHODS.names())


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("method", METHODS)
def test_one_epoch_every_backbone(method, backbone, cache):
    trainer = RecTrainer(tiny_spec(method, backbone, cache))
    before = {k: v.clone() for k, v in trainer.method.f.state_dict().items()}
    m = trainer.train_epoch()
    assert np.isfinite(m["loss"]) and 0.0 <= m["valid/ndcg@20"] <= 1.0
    changed = [not torch.equal(before[k], v) for k, v in trainer.method.f.state_dict().items()]
    assert any(changed), "the target model did not move"
    if method.startswith("deca"):
        for key in ("deca/kl", "deca/h_mean", "deca/h_prime_mean"):
            assert np.isfinite(m[key])
        assert 0.0 <= m["deca/h_mean"] <= 1.0 and m["deca/kl"] >= 0.0
    df = training_positive_scores(trainer.method, trainer.split)
    assert len(df) == len(trainer.split.train) and df["probability"].between(0, 1).all()


def _grads_after_one_step(method: str, step: int, cache: str) -> dict[str, bool]:
    trainer = RecTrainer(tiny_spec(method, "gmf", cache))
    mth = trainer.method
    tr = trainer.split.train[:32]
    users, pos = torch.as_tensor(tr[:, 0]), torch.as_tensor(tr[:, 1])
    neg = torch.as_tensor(trainer.sampler.sample(tr[:, 0], 1, np.random.default_rng(0)))
    mth.zero_grad(set_to_none=True)
    loss, _ = mth.batch_loss(users, pos, neg, step)
    loss.backward()
    has = lambda mod: any(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters())  # noqa: E731
    return {"f": has(mth.f), "g": has(mth.g), "h": has(mth.h), "h_prime": has(mth.h_prime)}


def test_deca_alternates_dp_dn_and_g_learns():
    assert _grads_after_one_step("deca", 0, "off") == {"f": True, "g": True, "h": True, "h_prime": False}
    assert _grads_after_one_step("deca", 1, "off") == {"f": True, "g": True, "h": False, "h_prime": True}
    # ablations: one sub-task on every step
    assert _grads_after_one_step("deca-dn", 0, "off")["h_prime"] is True
    assert _grads_after_one_step("deca-dp", 1, "off")["h"] is True


def test_deca_g_follows_f_only_through_kl():
    """With alpha = 1 the loss of g is KL(g||f) alone: zero when g equals f, so g gets no push."""
    trainer = RecTrainer(tiny_spec("deca", "mf", "off", aux_backbone="mf"))
    mth = trainer.method
    mth.g.load_state_dict(mth.f.state_dict())
    tr = trainer.split.train[:16]
    neg = torch.as_tensor(trainer.sampler.sample(tr[:, 0], 1, np.random.default_rng(0)))
    loss, _ = mth.batch_loss(torch.as_tensor(tr[:, 0]), torch.as_tensor(tr[:, 1]), neg, 0)
    loss.backward()
    assert all(p.grad.abs().max() < 1e-6 for p in mth.g.parameters())
    assert any(p.grad.abs().max() > 1e-6 for p in mth.f.parameters())


def test_l2_only_on_target(cache):
    for method in ("deca", "deca_p"):
        mth = RecTrainer(tiny_spec(method, "gmf", cache)).method
        reg = {id(p) for p in mth.regularised_parameters()}
        assert reg == {id(p) for p in mth.f.parameters()}


def test_deca_p_prior_is_frozen_cached_and_seed_specific(tmp_path):
    spec = tiny_spec("deca_p", "gmf", str(tmp_path))
    first = RecTrainer(spec)
    assert first.pretrain_info == {} and not first.prepared  # f' is trained before the first epoch
    first.prepare()
    assert first.pretrain_info["cached"] is False
    assert all(not p.requires_grad for p in first.method.g.parameters())
    opt_params = {id(p) for group in first.optimizer.param_groups for p in group["params"]}
    assert not opt_params & {id(p) for p in first.method.g.parameters()}
    # the prior has its own seed: not the target's initialisation
    assert first.pretrain_info["seed"] == spec.get("seed", 0) + 1000
    first_metrics = first.train_epoch()

    # a different C reuses f' from the cache, and training continues exactly as without the cache
    again = RecTrainer({**spec, "C0": 5.0})
    again.prepare()
    assert again.pretrain_info["cached"] is True
    for a, b in zip(first.method.g.state_dict().values(), again.method.g.state_dict().values()):
        assert torch.equal(a, b)
    same = RecTrainer(spec)
    same.prepare()
    assert same.pretrain_info["cached"] is True
    assert same.train_epoch()["loss"] == first_metrics["loss"]
    # another seed never reuses it
    other = RecTrainer({**spec, "seed": 1})
    other.prepare()
    assert other.pretrain_info["cached"] is False
    split = load_dataset("rec", "synthetic", **TINY)
    full = {**first.spec}
    assert prior_key(full, split) != prior_key({**full, "seed": 1}, split)
    assert prior_key(full, split) == prior_key({**full, "C1": 3.0, "alpha": 0.2}, split)
    assert prior_key(full, split) != prior_key({**full, "lr": 0.01}, split)


def prior_key(spec: dict, split) -> str:
    """The cache key of the prior a DeCA(p) trial with ``spec`` pre-trains."""
    return pretrain_key(pretrain_spec(spec, pretrain_overrides(spec)), split)[1]


def test_deca_p_prior_mode_follows_the_authors(cache):
    """Issue 17: the authors' f' stays in training mode (CDAE: a fresh corruption mask per batch);
    ``prior_mode: eval`` holds it in eval mode (deterministic prior)."""
    trainer = RecTrainer(tiny_spec("deca_p", "cdae", cache))
    mth = trainer.method
    assert REC_METHODS.get("deca_p").defaults["prior_mode"] == "train"
    mth.train()
    assert mth.f.training and mth.g.training
    batch = next(iter(trainer.batches()))
    users, pos, neg, neg_users = batch
    a, b = mth.prior_logits(users, pos, neg, neg_users), mth.prior_logits(users, pos, neg, neg_users)
    assert not torch.equal(a[0], b[0])  # a fresh dropout mask per call
    mth.eval()
    assert not mth.f.training and not mth.g.training
    held = RecTrainer(tiny_spec("deca_p", "cdae", cache, prior_mode="eval")).method
    held.train()
    assert held.f.training and not held.g.training
    a, b = held.prior_logits(users, pos, neg, neg_users), held.prior_logits(users, pos, neg, neg_users)
    assert torch.equal(a[0], b[0])
    with pytest.raises(ValueError, match="prior_mode"):
        RecTrainer(tiny_spec("deca_p", "cdae", cache, prior_mode="dropout"))


def test_clean_probability_definitions(cache):
    split = load_dataset("rec", "synthetic", **TINY)
    u, i = torch.as_tensor(split.train[:10, 0]), torch.as_tensor(split.train[:10, 1])
    deca = RecTrainer(tiny_spec("deca", "gmf", cache)).method
    f, h, hp = (torch.sigmoid(m(u, i)) for m in (deca.f, deca.h, deca.h_prime))
    assert torch.allclose(deca.clean_probability(u, i), hp * f / (hp * f + h * (1 - f)))
    deca_p = RecTrainer(tiny_spec("deca_p", "gmf", cache)).method
    assert torch.allclose(deca_p.clean_probability(u, i), torch.sigmoid(deca_p.f(u, i)))
    assert RecTrainer(tiny_spec("normal", "gmf", cache)).method.clean_probability(u, i) is None


def test_ensemble_scores_mean_probability(cache):
    trainer = RecTrainer(tiny_spec("ensemble", "gmf", cache))
    mth = trainer.method
    users = torch.arange(5)
    want = (torch.sigmoid(mth.f.score_all(users)) + torch.sigmoid(mth.twin.score_all(users))) / 2
    assert torch.allclose(mth.score_all(users), want)
    # the twin is a different model (other seed), trained in the same loop and regularised
    assert not torch.equal(mth.f.user.weight, mth.twin.user.weight)
    before = mth.twin.user.weight.detach().clone()
    trainer.train_epoch()
    assert not torch.equal(before, mth.twin.user.weight)
    assert {id(p) for p in mth.twin.parameters()} <= {id(p) for p in mth.regularised_parameters()}


def test_ensemble_members_train_as_two_normal_runs():
    """f follows a ``normal`` run with seed s, the twin one with seed s + 1000 (own batches)."""
    spec = tiny_spec("ensemble", "gmf", "off", l2=0.1, seed=4)
    ens = RecTrainer(spec)
    nor = RecTrainer({**spec, "method": "normal"})
    nor_twin = RecTrainer({**spec, "method": "normal", "seed": 1004})
    for t in (ens, nor, nor_twin):
        t.train_epoch(), t.train_epoch()
    for a, b in zip(ens.method.f.parameters(), nor.method.f.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    for a, b in zip(ens.method.twin.parameters(), nor_twin.method.f.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_ensemble_twin_draws_the_row_batches_of_a_normal_run_on_cdae():
    """On the authors' CDAE both members train on rows (normal's batching, summed loss): the
    twin's batches and zero entries are those of a ``normal`` run with seed s + 1000."""
    spec = tiny_spec("ensemble", "cdae", "off", seed=4, batch_size=8)
    ens = RecTrainer(spec)
    assert ens.row_batching and ens.method._rows is not None
    ens.method.on_epoch_start(1)
    twin = list(ens.method._row_stream)
    want = list(row_batches(RecTrainer({**spec, "method": "normal", "seed": 1004})))
    assert len(twin) == len(want) > 1
    for got, ref in zip(twin, want):
        for a, b in zip(got, ref):
            assert np.array_equal(a, b.numpy())
    ens = RecTrainer(spec)
    m = ens.train_epoch()
    assert m["loss/bce_twin"] > 0 and m["loss/bce"] > 0


@pytest.mark.parametrize("backbone", ["gmf", "cdae"])
def test_ensemble_resume_is_exact(backbone):
    spec = tiny_spec("ensemble", backbone, "off", max_epochs=3)
    full = RecTrainer(spec)
    for _ in range(3):
        last = full.train_epoch()
    part = RecTrainer(spec)
    part.train_epoch()
    state = part.state_dict()
    resumed = RecTrainer(spec)
    resumed.load_state_dict(state)
    resumed.train_epoch()
    assert resumed.train_epoch()["loss"] == last["loss"]


def test_tce_drop_schedule_and_truncation():
    # the earlier form, now the named option tce_form "positives" (published form:
    # tests/test_baselines_published.py)
    from deca_tune.losses.truncated_bce import truncated_bce_positives as truncated_bce

    trainer = RecTrainer(tiny_spec("tce", "gmf", "off", drop_rate=0.3, num_gradual=10,
                                   tce_form="positives"))
    rates = [trainer.method.rate_at(s) for s in (0, 5, 10, 50)]
    assert rates == pytest.approx([0.0, 0.15, 0.3, 0.3])
    # positives with logits 3, -2, 0, 1 and one negative at 0: BCE = softplus(-z)
    pos, neg = torch.tensor([3.0, -2.0, 0.0, 1.0]), torch.tensor([[0.0]] * 4)
    sp = lambda z: np.log1p(np.exp(-z))  # noqa: E731
    # drop 50% of 4 positives = the two largest losses (logits -2 and 0); keep 3 and 1;
    # loss = mean over kept positives + mean over the negatives (each BCE(0, label 0) = ln 2)
    loss, n_drop = truncated_bce(pos, neg, 0.5)
    assert n_drop == 2
    assert loss.item() == pytest.approx((sp(3.0) + sp(1.0)) / 2 + np.log(2), rel=1e-6)
    loss0, _ = truncated_bce(pos, neg, 0.0)
    assert loss0.item() == pytest.approx((sp(3.0) + sp(-2.0) + sp(0.0) + sp(1.0)) / 4 + np.log(2), rel=1e-6)
    from deca_tune.methods.rec.normal import bce_loss
    assert loss0.item() == pytest.approx(bce_loss(pos, neg).item(), rel=1e-6)


def test_bpr_loss_by_hand():
    from deca_tune.losses.bpr import bpr_loss

    # -log sigmoid(2 - 0) and -log sigmoid(0 - 1), averaged
    got = bpr_loss(torch.tensor([2.0, 0.0]), torch.tensor([[0.0], [1.0]])).item()
    assert got == pytest.approx((np.log1p(np.exp(-2.0)) + np.log1p(np.exp(1.0))) / 2, rel=1e-6)


def test_wbpr_uses_popularity_sampler():
    assert REC_METHODS.get("wbpr").sampler == "popularity"


def test_popularity_sampler_proportional_and_rejects_positives():
    split = load_dataset("rec", "synthetic", n_users=200, n_items=50, seed=1)
    sampler = SAMPLERS.get("popularity")(split)
    users = np.repeat(np.arange(split.n_users), 200)
    neg = sampler.sample(users, 1, np.random.default_rng(0)).reshape(-1)
    assert not sampler.is_positive(users, neg).any()
    # vs. uniform: negatives of popular items are much more frequent under popularity sampling
    pop = np.bincount(split.train[:, 1], minlength=split.n_items)
    uni = SAMPLERS.get("uniform")(split).sample(users, 1, np.random.default_rng(0)).reshape(-1)
    corr_pop = np.corrcoef(pop, np.bincount(neg, minlength=split.n_items))[0, 1]
    corr_uni = np.corrcoef(pop, np.bincount(uni, minlength=split.n_items))[0, 1]
    assert corr_pop > 0.8 and corr_pop > corr_uni + 0.3
    again = sampler.sample(users, 1, np.random.default_rng(0)).reshape(-1)
    assert np.array_equal(neg, again)


def test_bad_hyperparameters_fail_clearly():
    with pytest.raises(ValueError, match="alpha"):
        RecTrainer(tiny_spec("deca", "mf", "off", alpha=2.0))
    with pytest.raises(ValueError, match="drop_rate"):
        RecTrainer(tiny_spec("tce", "mf", "off", drop_rate=1.5))


def test_clean_logits_match_probabilities(cache):
    from deca_tune.methods.scores import clean_score

    split = load_dataset("rec", "synthetic", **TINY)
    u, i = torch.as_tensor(split.train[:10, 0]), torch.as_tensor(split.train[:10, 1])
    for method in ("deca", "deca_p", "ensemble", "normal"):
        mth = RecTrainer(tiny_spec(method, "gmf", cache)).method
        p = mth.clean_probability(u, i)
        p = torch.sigmoid(mth.f(u, i)) if p is None else p
        assert torch.allclose(torch.sigmoid(clean_score(mth, u, i)).float(), p.float(), atol=1e-6)


@pytest.mark.parametrize("h_backbone,aux_backbone", [("gmf", "neumf"), ("neumf", "lightgcn"), ("mf", "cdae")])
def test_deca_noise_and_auxiliary_backbones(h_backbone, aux_backbone):
    """Table 6: h/h' as any backbone; the auxiliary g as any backbone."""
    trainer = RecTrainer(tiny_spec("deca", "gmf", "off", h_backbone=h_backbone, aux_backbone=aux_backbone))
    mth = trainer.method
    assert type(mth.h).__name__.lower() == h_backbone and type(mth.g).__name__.lower() == aux_backbone
    assert np.isfinite(trainer.train_epoch()["loss"])


def test_pretrain_overrides_apply_and_change_the_key(tmp_path):
    split = load_dataset("rec", "synthetic", **TINY)
    spec = RecTrainer(tiny_spec("deca_p", "gmf", str(tmp_path))).spec
    assert prior_key(spec, split) != prior_key({**spec, "pretrain_overrides": {"l2": 0.5}}, split)
    assert pretrain_spec(spec, pretrain_overrides(spec))["seed"] == spec["seed"] + 1000
    assert pretrain_overrides({**spec, "pretrain_seed": 7})["seed"] == 7
    with pytest.raises(TypeError, match="pretrain_overrides"):
        pretrain_overrides({**spec, "pretrain_overrides": [1]})
