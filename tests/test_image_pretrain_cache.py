"""DeCA(p)'s prior f' on images comes from the on-disk cache of EpochTrainer.pretrain: trials of a
search with the same seed share one f' whatever their C1/C2/T1; another seed never does."""
from __future__ import annotations

import torch

from deca_tune.tasks import get_task
from deca_tune.training.image_trainer import ImageTrainer

TINY = {"n_train": 300, "n_test": 40, "image_size": 16}


def _spec(cache, **kw):
    spec = dict(task="image", dataset="synthetic-images", dataset_options=TINY, backbone="mlp",
                method="deca_p", seed=0, max_epochs=2, lr=0.05, batch_size=50, valid_size=60,
                meta_per_class=3, noise_rate=0.4, device="cpu", C1=1.0, C2=1.0, T1=1,
                pretrain_overrides={"max_epochs": 1}, pretrain_cache=str(cache))
    spec.update(kw)
    return get_task("image").only_known(spec)


def _prepared(spec):
    t = ImageTrainer(spec)
    t.prepare()
    return t


def test_same_seed_other_constants_share_one_prior_and_another_seed_does_not(tmp_path):
    a = _prepared(_spec(tmp_path))
    assert not a.pretrain_info["cached"] and a.pretrain_info["seconds"] > 0
    b = _prepared(_spec(tmp_path, C1=10.0, C2=50.0, T1=2))
    assert b.pretrain_info["cached"] and b.pretrain_info["seconds"] == 0.0
    assert b.pretrain_info["path"] == a.pretrain_info["path"]
    for (name, p), (_, q) in zip(a.method.f_prime.state_dict().items(), b.method.f_prime.state_dict().items()):
        assert torch.equal(p, q), name
    c = _prepared(_spec(tmp_path, seed=1))
    assert not c.pretrain_info["cached"] and c.pretrain_info["path"] != a.pretrain_info["path"]
    assert c.pretrain_info["seed"] == 1001
    assert len(list(tmp_path.glob("*.pt"))) == 2
    # the cached prior gives the same training numbers as a freshly trained one
    assert a.train_epoch()["loss"] == ImageTrainer(_spec(tmp_path)).train_epoch()["loss"]


def test_a_trial_lr_changes_the_prior_unless_pretrain_overrides_fix_it(tmp_path):
    a = _prepared(_spec(tmp_path))
    other_lr = _prepared(_spec(tmp_path, lr=0.1))
    assert not other_lr.pretrain_info["cached"]  # f' is the normal run of the trial's own lr
    fixed = {"max_epochs": 1, "lr": 0.05}
    b = _prepared(_spec(tmp_path, lr=0.1, pretrain_overrides=fixed))
    c = _prepared(_spec(tmp_path, lr=0.02, pretrain_overrides=fixed))
    assert b.pretrain_info["cached"] and c.pretrain_info["cached"]  # the search's setting: one f' per seed
    assert b.pretrain_info["path"] == a.pretrain_info["path"] == c.pretrain_info["path"]
