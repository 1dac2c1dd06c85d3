"""ImageTrainer: the contract's metrics, bit-exact resume, best-epoch restore, early stopping,
DeCA(p)'s pre-training and the paper protocol."""
from __future__ import annotations

import pytest
import torch

from deca_tune.tasks import get_task
from deca_tune.training.image_trainer import ImageTrainer

TINY = {"n_train": 400, "n_test": 60, "image_size": 16}
TIMES = ("epoch_seconds", "train_seconds", "pretrain_seconds")


def _spec(method="normal", backbone="mlp", **kw):
    spec = dict(task="image", dataset="synthetic-images", dataset_options=TINY, backbone=backbone,
                method=method, seed=0, max_epochs=3, lr=0.05, batch_size=50, valid_size=80,
                meta_per_class=5, noise_rate=0.4, device="cpu", T1=1, round_epochs=1,
                trim_ratio=0.3, pretrain_overrides={"max_epochs": 1})
    spec.update(kw)
    return get_task("image").only_known(spec)


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key not in TIMES:
            assert a[key] == b[key], key


def test_metrics_follow_the_contract():
    t = ImageTrainer(_spec())
    m = t.train_epoch()
    for key in ("epoch", "loss", "loss/ce", "valid/accuracy", "valid_clean/accuracy", "test_clean/accuracy",
                "epoch_seconds"):
        assert key in m, key
    assert m["epoch"] == 1 and t.epoch == 1 and not t.finished
    assert t.selection_metric == "valid/accuracy" and t.best["epoch"] == 1
    assert all(isinstance(v, (int, float)) for v in m.values())


@pytest.mark.parametrize("method,backbone,augment", [
    ("normal", "convnet", True),  # augmentation draws from the method's generator
    ("itlm", "mlp", "auto"),
    ("mwnet", "mlp", "auto"),
    ("deca_p", "mlp", "auto"),
])
def test_resume_is_bit_exact(method, backbone, augment):
    spec = _spec(method, backbone, augment=augment)
    a = ImageTrainer(spec)
    a.train_epoch()
    a.train_epoch()
    state = a.state_dict()
    steps_done = a.step
    ma = a.train_epoch()

    b = ImageTrainer(spec)
    b.pretrain = lambda overrides: pytest.fail("pre-training must not run again on resume")
    b.load_state_dict(state)
    assert b.epoch == 2 and b.step == steps_done
    mb = b.train_epoch()
    _same(ma, mb)
    for (name, pa), (_, pb) in zip(a.method.state_dict().items(), b.method.state_dict().items()):
        if isinstance(pa, torch.Tensor):
            assert torch.equal(pa, pb), name
    _same(a.best, b.best)
    assert a.finished and b.finished


def test_same_seed_same_numbers_and_other_seed_differs():
    m1 = ImageTrainer(_spec()).train_epoch()
    m2 = ImageTrainer(_spec()).train_epoch()
    _same(m1, m2)
    m3 = ImageTrainer(_spec(seed=1)).train_epoch()
    assert m3["loss"] != m1["loss"]


def test_fit_restores_the_best_epoch_and_early_stopping():
    t = ImageTrainer(_spec(max_epochs=4, lr=0.2))
    best = t.fit()
    assert t.finished and t.epoch == 4
    again = t.evaluate()
    for key, value in again.items():
        assert best[key] == value, key
    # lr ~0: nothing improves after the first epoch, patience 1 stops after the second
    s = ImageTrainer(_spec(max_epochs=10, lr=1e-12, patience=1))
    s.fit()
    assert s.stopped_early and s.epoch == 2


def test_deca_p_pretrains_a_normal_model_with_another_seed_on_the_same_data():
    calls = []
    t = ImageTrainer(_spec("deca_p", pretrain_cache="off"))
    real = t.pretrain

    def spy(overrides):
        calls.append(overrides)
        return real(overrides)

    t.pretrain = spy
    m = t.train_epoch()
    assert calls == [{"seed": 1000, "max_epochs": 1}]
    assert m["pretrain_seconds"] > 0 and "loss/likelihood" in m and "deca/kl" in m and m["deca/phase"] == 22.0
    assert m["lr"] == 0.05
    # f' is the pre-trained normal model: same weights as training normal with that seed
    ref = ImageTrainer({**_spec("normal"), "seed": 1000, "data_seed": 0, "max_epochs": 1}, split=t.split)
    ref.fit()
    for (name, p), (_, q) in zip(t.method.f_prime.state_dict().items(), ref.method.f.state_dict().items()):
        assert torch.equal(p, q), name
    assert t.train_epoch()["deca/phase"] == 24.0


def test_paper_protocol_selects_on_clean_validation_and_clean_scores():
    t = ImageTrainer(_spec(protocol="paper", max_epochs=1))
    assert t.selection_metric == "valid_clean/accuracy"
    t.fit()
    scores = t.train_clean_scores()
    assert scores.shape == t.split.train_y_noisy.shape and torch.isfinite(scores).all()


def test_bad_spec_values_fail_clearly():
    with pytest.raises(ValueError, match="optimizer"):
        ImageTrainer(_spec(optimizer="rmsprop"))
    with pytest.raises(ValueError, match="protocol"):
        ImageTrainer(_spec(protocol="clean"))
    with pytest.raises(ValueError, match="task"):
        ImageTrainer(_spec(task="rec"))
    with pytest.raises(KeyError, match="image method"):
        ImageTrainer(_spec(method="coteaching"))


def test_itlm_faithful_restarts_the_schedule_and_the_optimiser_every_round():
    base = 0.05
    t = ImageTrainer(_spec("itlm", max_epochs=5, round_epochs=2, schedule="cosine", trim_ratio=0.25,
                           itlm_form="faithful"))
    lrs, rows, momenta = [], [], []
    real = t._restart_schedule

    def spy():
        real()
        momenta.append(len(t.optimizer.state))  # cleared: no momentum buffer survives a round

    t._restart_schedule = spy
    while not t.finished:
        m = t.train_epoch()
        lrs.append(m["lr"])
        rows.append(m["train_rows"])
    half = base * 0.5  # cosine over a 2-epoch round: lr, lr/2
    assert lrs == pytest.approx([base, half, base, half, base])  # the last round has 1 epoch
    n = len(t.split.train_y_noisy)
    assert rows == [n, n] + [round(0.75 * n)] * 3
    assert momenta == [0, 0]
    # the warm form: one cosine schedule over all 5 epochs, never restarted
    w = ImageTrainer(_spec("itlm", max_epochs=5, round_epochs=2, schedule="cosine", itlm_form="warm"))
    warm = [w.train_epoch()["lr"] for _ in range(5)]
    assert warm[0] == pytest.approx(base) and all(a > b for a, b in zip(warm, warm[1:]))


def test_itlm_faithful_reinitialises_and_resume_mid_round_is_bit_exact():
    spec = _spec("itlm", max_epochs=5, round_epochs=2, trim_ratio=0.25, itlm_form="faithful")
    a = ImageTrainer(spec)
    states, metrics = {}, []
    while not a.finished:
        metrics.append(a.train_epoch())
        states[a.epoch] = a.state_dict()
    assert a.method.round == 2
    for at in (1, 3):  # mid-round 0 and mid-round 1 (after a re-initialisation)
        b = ImageTrainer(spec)
        b.load_state_dict(states[at])
        rest = [b.train_epoch() for _ in range(5 - at)]
        for ma, mb in zip(metrics[at:], rest):
            _same(ma, mb)
        for (name, pa), (_, pb) in zip(a.method.state_dict().items(), b.method.state_dict().items()):
            if isinstance(pa, torch.Tensor):
                assert torch.equal(pa, pb), name
    # the round boundary re-initialises f: epoch 3's loss is back near log(10) (a fresh net)
    assert metrics[2]["loss"] > metrics[1]["loss"]


def test_itlm_official_rounds_plain_sgd_and_lr_x02_at_60_percent_of_every_round():
    from deca_tune.methods.image.itlm import official_rounds

    # 80 : 20 x 4 : 133 x 4 scaled; 60 epochs (the memorise preset): round ends at
    # round(60 * [80, 100, 120, 140, 160, 293, 426, 559, 692] / 692) = 7, 9, 10, 12, 14, 25, 37, 48, 60
    assert official_rounds(692) == [80, 20, 20, 20, 20, 133, 133, 133, 133]
    assert official_rounds(60) == [7, 2, 1, 2, 2, 11, 12, 11, 12]
    assert official_rounds(10) == [1, 1, 2, 2, 2, 2] and official_rounds(1) == [1]
    t = ImageTrainer(_spec("itlm", max_epochs=10, momentum=0.9, weight_decay=5e-4, schedule="cosine",
                           trim_ratio="noise_rate"))
    assert t.method.form == "official" and t.method.trim_ratio == 0.4  # 1 - noise rate kept
    group = t.optimizer.param_groups[0]
    assert isinstance(t.optimizer, torch.optim.SGD) and group["momentum"] == 0 and group["weight_decay"] == 0
    lrs, rows = [], []
    while not t.finished:
        m = t.train_epoch()
        lrs.append(m["lr"])
        rows.append(m["train_rows"])
    base, low = 0.05, 0.05 * 0.2
    # rounds of 1, 1, 2, 2, 2, 2 epochs: lr x0.2 from epoch int(0.6 * length) = 0 (1-epoch rounds)
    # or 1 (2-epoch rounds) of every round, back to the base lr at every round's start
    assert lrs == pytest.approx([low, low, base, low, base, low, base, low, base, low])
    n = len(t.split.train_y_noisy)
    assert rows == [n] + [int(0.6 * n)] * 9
    from deca_tune.methods import IMAGE_METHODS
    assert IMAGE_METHODS.get("itlm").defaults["trim_ratio"] == "noise_rate"
    assert ImageTrainer(_spec("itlm", trim_ratio=0.1)).method.trim_ratio == 0.1
    with pytest.raises(ValueError, match="trim_ratio"):
        ImageTrainer(_spec("itlm", trim_ratio="half"))


def test_itlm_official_resume_mid_round_is_bit_exact():
    spec = _spec("itlm", max_epochs=10)
    a = ImageTrainer(spec)
    states, metrics = {}, []
    while not a.finished:
        metrics.append(a.train_epoch())
        states[a.epoch] = a.state_dict()
    b = ImageTrainer(spec)
    b.load_state_dict(states[3])  # mid-round 2 (epochs 2-3)
    for ma in metrics[3:]:
        _same(ma, b.train_epoch())


def test_conv_backbones_train_channels_last_and_match_the_contiguous_run():
    fast = ImageTrainer(_spec("normal", "convnet", max_epochs=2))
    slow = ImageTrainer(_spec("normal", "convnet", max_epochs=2, memory_format="contiguous"))
    assert fast.method.channels_last and not slow.method.channels_last
    x = fast.method.inputs(fast.split.train_x[:4])
    assert x.is_contiguous(memory_format=torch.channels_last)  # (1 channel: both layouts at once)
    for _ in range(2):
        a, b = fast.train_epoch(), slow.train_epoch()
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert abs(a["valid/accuracy"] - b["valid/accuracy"]) <= 2 / 80  # at most 2 of 80 predictions flip
    # the evaluation data were moved to the training device once
    assert fast._valid_x.device == fast.device and fast._test_x.device == fast.device


@pytest.mark.parametrize("method", ["normal", "mwnet", "deca_p"])
def test_bf16_autocast_trains_close_to_fp32(method):
    fp32 = ImageTrainer(_spec(method, "convnet", max_epochs=2, pretrain_cache="off"))
    bf16 = ImageTrainer(_spec(method, "convnet", max_epochs=2, pretrain_cache="off", precision="bf16"))
    seen = []
    handle = bf16.method.f.features[0].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    a, b = fp32.train_epoch(), bf16.train_epoch()
    handle.remove()
    assert torch.bfloat16 in seen  # the convolutions ran in bf16
    assert all(p.dtype == torch.float32 for p in bf16.method.parameters())  # the weights stay fp32
    assert torch.isfinite(torch.tensor(b["loss"])) and b["loss"] == pytest.approx(a["loss"], rel=0.05)
    with pytest.raises(ValueError, match="precision"):
        ImageTrainer(_spec(precision="fp16"))
