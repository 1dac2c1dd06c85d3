import numpy as np
import pytest
import torch

from deca_tune.training.rec_trainer import RecTrainer
from tests.helpers_rec import tiny_split


def make(split, **kw):
    spec = {"backbone": "gmf", "max_epochs": 3, "batch_size": 32, "seed": 3, "lr": 0.01, **kw}
    return RecTrainer(spec, split=split)


def test_epoch_reports_the_contract_metrics():
    t = make(tiny_split())
    m = t.train_epoch()
    for key in ("epoch", "loss", "loss/bce", "valid/ndcg@20", "valid/recall@5", "valid_clean/ndcg@20",
                "test/ndcg@20", "test_clean/recall@20", "epoch_seconds"):
        assert key in m, key
    assert m["epoch"] == 1 and t.selection_metric == "valid/ndcg@20"
    assert make(tiny_split(), protocol="paper").selection_metric == "valid_clean/ndcg@20"


@pytest.mark.parametrize("backbone", ["gmf", "cdae"])
def test_same_seed_same_numbers(backbone):
    split = tiny_split()
    a = [make(split, backbone=backbone).train_epoch() for _ in range(1)]
    b = [make(split, backbone=backbone).train_epoch() for _ in range(1)]
    keys = [k for k in a[0] if not k.endswith("seconds")]
    assert [a[0][k] for k in keys] == [b[0][k] for k in keys]


def test_resume_from_state_dict_is_bit_exact():
    split = tiny_split()
    full = make(split, backbone="cdae")
    ref = [full.train_epoch() for _ in range(3)]
    part = make(split, backbone="cdae")
    part.train_epoch()
    state = part.state_dict()
    resumed = make(split, backbone="cdae")
    resumed.load_state_dict(state)
    rest = [resumed.train_epoch() for _ in range(2)]
    for x, y in zip(ref[1:], rest):
        assert x["loss"] == y["loss"] and x["valid/ndcg@20"] == y["valid/ndcg@20"]
    assert resumed.finished


def test_training_reduces_loss_and_fit_restores_best_epoch():
    split = tiny_split()
    t = make(split, max_epochs=6, lr=0.05)
    history = []
    while not t.finished:
        history.append(t.train_epoch())
    assert history[-1]["loss"] < history[0]["loss"]
    best = max(history, key=lambda m: m["valid/ndcg@20"])
    t2 = make(split, max_epochs=6, lr=0.05)
    assert t2.fit()["epoch"] == best["epoch"]
    restored = t2.evaluate()
    assert restored["valid/ndcg@20"] == pytest.approx(best["valid/ndcg@20"])


def test_early_stopping_with_patience():
    t = make(tiny_split(), max_epochs=50, patience=2, lr=1e-12)  # lr ~0: never improves after epoch 1
    t.fit()
    assert t.stopped_early and t.epoch == 3


def test_default_protocol_masks_validation_items_at_test_time():
    split = tiny_split()
    t = make(split)
    mask = {tuple(p) for p in t.test_mask}
    assert all(tuple(p) in mask for p in split.valid)
    paper = make(split, protocol="paper")
    pmask = {tuple(p) for p in paper.test_mask}
    assert all(tuple(p) in pmask for p in split.valid_clean)
    assert not all(tuple(p) in pmask for p in split.valid)


def test_restore_best_false_keeps_the_last_epoch():
    split = tiny_split()
    t = make(split, max_epochs=4, lr=0.05, restore_best=False)
    result = t.fit()
    assert result["epoch"] == 4 and result == t.last
    assert t.evaluate()["valid/ndcg@20"] == pytest.approx(t.last["valid/ndcg@20"])


def test_empty_selection_split_is_a_clear_error():
    split = tiny_split()
    split.valid = split.valid[:0]
    with pytest.raises(ValueError, match="valid split is empty"):
        make(split)


# ------------------------------------------------------------ issue 13: eval_splits
def test_selection_eval_scores_only_the_selection_split_until_the_last_epoch():
    split = tiny_split()
    full = make(split, max_epochs=3)
    sel = make(split, max_epochs=3, eval_splits="selection")
    for epoch in range(1, 4):
        a, b = full.train_epoch(), sel.train_epoch()
        assert b["valid/ndcg@20"] == a["valid/ndcg@20"] and b["loss"] == a["loss"]
        has_test = any(k.startswith("test") for k in b)
        assert has_test == (epoch == 3), epoch  # the last epoch reports every split
        assert not any(k.startswith("valid_clean") for k in b) or epoch == 3
    keys = [k for k in a if not k.endswith("seconds")]
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert make(split, protocol="paper", eval_splits="selection").epoch_eval_splits() == ["valid_clean"]


def test_selection_eval_reports_every_split_when_early_stopping_ends_the_run():
    t = make(tiny_split(), max_epochs=50, patience=2, lr=1e-12, eval_splits="selection")
    history = []
    while not t.finished:
        history.append(t.train_epoch())
    assert t.stopped_early and len(history) == 3
    assert "test_clean/ndcg@20" in history[-1] and "test_clean/ndcg@20" not in history[0]
    assert t.last is history[-1]
    assert set(t.evaluate("all")) <= set(history[-1])


def test_eval_splits_is_checked():
    from deca_tune.tasks import SpecError

    with pytest.raises(SpecError, match="eval_splits"):
        make(tiny_split(), eval_splits="test")


def test_epoch_parts_are_summed_once_per_epoch():
    t = make(tiny_split())
    m = t.train_epoch()
    assert isinstance(m["loss/bce"], float) and isinstance(m["loss"], float)
    assert not hasattr(t, "_tensor_totals")  # nothing left over for the next epoch
    deca = make(tiny_split(), method="deca")
    d = deca.train_epoch()
    for key in ("deca/kl", "deca/h_mean", "deca/h_prime_mean", "loss/likelihood"):
        assert isinstance(d[key], float) and np.isfinite(d[key]), key


def test_own_adam_is_torch_adam_bit_for_bit_and_reads_its_checkpoints():
    from deca_tune.training.adam import Adam

    torch.manual_seed(0)
    shapes = [(7, 3), (3,), (5, 2)]
    start = [torch.randn(s) for s in shapes]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    ref = [torch.nn.Parameter(t.clone()) for t in start]
    a, b = Adam(ours, lr=0.01), torch.optim.Adam(ref, lr=0.01)
    gen = torch.Generator().manual_seed(1)
    for step in range(12):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for i, (p, q) in enumerate(zip(ours, ref)):
            skip = i == 2 and step % 3 == 0  # a tensor without gradient on some steps
            p.grad = None if skip else grads[i].clone()
            q.grad = None if skip else grads[i].clone()
        a.step()
        b.step()
        assert all(torch.equal(p, q) for p, q in zip(ours, ref)), step
    resumed = [torch.nn.Parameter(q.detach().clone()) for q in ref]
    c = Adam(resumed, lr=0.5)
    c.load_state_dict(b.state_dict())  # a torch.optim.Adam checkpoint
    assert c.lr == 0.01 and c.state_dict()["state"][0]["step"] == b.state_dict()["state"][0]["step"]
    for p, q in zip(resumed, ref):
        p.grad = torch.ones_like(p)
        q.grad = torch.ones_like(q)
    c.step()
    b.step()
    assert all(torch.equal(p, q) for p, q in zip(resumed, ref))
    b2 = torch.optim.Adam([torch.nn.Parameter(t.clone()) for t in start], lr=0.01)
    b2.load_state_dict(c.state_dict())  # and the other way round
