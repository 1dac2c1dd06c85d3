"""The ``linear`` training recipe (issue 21): batch L2 on the rows a batch looks up, LazyAdam on
those rows, and the spec key ``recipe`` (its validation and the ``auto`` default by data size)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deca_tune.models.rec.base import add_row_grads, row_lookup, take_row_grads
from deca_tune.tasks import SpecError, get_task
from deca_tune.tasks.rec import LINEAR_RECIPE_MIN_ROWS, resolve_recipe
from deca_tune.training.adam import Adam, LazyAdam, distinct_rows
from deca_tune.training.rec_trainer import RecTrainer
from helpers_rec import tiny_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def spec(**kw) -> dict:
    return {"backbone": "gmf", "method": "normal", "max_epochs": 1, "batch_size": 32, "seed": 1,
            "lr": 0.01, "l2": 0.3, "device": "cpu", "pretrain_cache": "off", "recipe": "linear", **kw}


# ------------------------------------------------------------------------- LazyAdam
def test_lazy_adam_matches_adam_on_rows_touched_every_step_and_leaves_the_others():
    gen = torch.Generator().manual_seed(0)
    init = torch.randn(12, 4, generator=gen)
    dense_w = init.clone().requires_grad_()
    lazy_w = init.clone().requires_grad_()
    dense, lazy = Adam([dense_w], lr=0.05), LazyAdam([lazy_w], lr=0.05)
    always, never, sometimes = torch.tensor([0, 3, 5]), torch.tensor([1, 2, 11]), torch.tensor([4, 7])
    for step in range(6):
        index = torch.cat([always, sometimes[: step % 3]]) if step % 2 else always
        grad_rows = torch.randn(len(index), 4, generator=gen)
        dense.zero_grad()
        dense_w.grad = torch.zeros_like(init).index_add_(0, index, grad_rows)
        dense.step()
        lazy.zero_grad()
        (row_lookup(lazy_w, index) * grad_rows).sum().backward()
        assert lazy_w.grad is None  # the table's gradient came as rows
        lazy.step()
    assert torch.equal(lazy_w[always], dense_w[always])  # same operations, same numbers
    assert torch.equal(lazy_w[never], init[never])  # never touched: never moved
    assert torch.equal(lazy.state[0]["exp_avg"][never], torch.zeros(3, 4))
    # rows idle in some steps: dense Adam moves them on their momentum, LazyAdam does not
    assert not torch.allclose(lazy_w[sometimes], dense_w[sometimes])


def test_lazy_adam_sums_duplicate_rows_and_mixes_with_a_dense_gradient():
    w = torch.zeros(5, 2, requires_grad=True)
    opt = LazyAdam([w], lr=0.1)
    index = torch.tensor([1, 3, 1])
    (row_lookup(w, index) * torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])).sum().backward()
    parts = take_row_grads(w)
    assert len(parts) == 1 and torch.equal(parts[0][0], index)
    add_row_grads(w, *parts[0])  # put back what take_row_grads removed
    opt.step()
    # first Adam step moves every touched coordinate by -lr * sign(g) (up to eps)
    assert torch.allclose(w[[1, 3]], torch.full((2, 2), -0.1), atol=1e-6)
    assert torch.equal(w[[0, 2, 4]], torch.zeros(3, 2))
    # a table with a dense gradient too gets the dense update with the rows added
    opt.zero_grad()
    loss = (row_lookup(w, torch.tensor([0])) ** 2).sum() + w.sum()
    loss.backward()
    assert w.grad is not None
    before = w.detach().clone()
    opt.step()
    assert not torch.equal(w[4], before[4]) and take_row_grads(w) == []


def test_distinct_rows_without_sorting():
    index = torch.tensor([7, 2, 7, 9, 2, 2, 0])
    rows, inverse = distinct_rows(index, torch.full((10,), 123, dtype=torch.long))
    assert sorted(rows.tolist()) == [0, 2, 7, 9]
    assert torch.equal(rows[inverse], index)


# --------------------------------------------------------------------- batch L2
def test_batch_l2_is_the_hand_computed_penalty_of_the_looked_up_rows():
    split = tiny_split()
    t = RecTrainer(spec(neg_ratio=2), split=split)
    users, pos = torch.tensor([0, 4, 4]), torch.tensor([1, 2, 3])
    neg = torch.tensor([[5, 6], [7, 5], [9, 9]])
    f = t.method.f
    all_users = torch.cat([users, users.repeat_interleave(2)])
    all_items = torch.cat([pos, neg.reshape(-1)])
    U, I = f.user.weight.detach(), f.item.weight.detach()
    pairs = len(all_users)  # 9 scored pairs
    hand = 0.3 / (2 * pairs) * float((U[all_users] ** 2).sum() + (I[all_items] ** 2).sum())
    hand += 0.3 / (2 * split.n_users) * float((f.predict.weight.detach() ** 2).sum() + (f.predict.bias.detach() ** 2).sum())
    penalty = t.l2_penalty((users, pos, neg))
    assert float(penalty.detach()) == pytest.approx(hand, rel=1e-6)
    penalty.backward()
    grad = torch.zeros_like(U)
    for index, rows in take_row_grads(f.user.weight):  # the tables' part, handed as rows
        grad.index_add_(0, index, rows)
    counts = torch.bincount(all_users, minlength=split.n_users).float()[:, None]
    assert torch.allclose(grad, 0.3 / pairs * counts * U, rtol=1e-6, atol=1e-9)
    assert f.user.weight.grad is None and f.predict.weight.grad is not None


def test_one_linear_step_moves_only_the_batch_rows():
    split = tiny_split(n_users=30, n_items=40)
    t = RecTrainer(spec(batch_size=8), split=split)
    assert isinstance(t.optimizer, LazyAdam) and t.training_recipe == "linear"
    before = {k: v.clone() for k, v in t.method.f.state_dict().items()}
    batch = next(t.batches())
    loss, parts = t.batch_loss(batch)
    t._optimizer_step(loss, parts, {})
    users, pos, neg = batch
    after = t.method.f.state_dict()
    for table, touched in (("user.weight", users), ("item.weight", torch.cat([pos, neg.reshape(-1)]))):
        moved = (after[table] != before[table]).any(1)
        assert moved[touched].all()
        idle = torch.ones(len(moved), dtype=torch.bool)
        idle[touched] = False
        assert not moved[idle].any()


@pytest.mark.parametrize("backbone,method", [
    ("mf", "normal"), ("neumf", "normal"), ("lightgcn", "normal"), ("cdae", "normal"),
    ("gmf", "deca"), ("gmf", "deca_p"), ("neumf", "deca"), ("gmf", "ensemble"), ("gmf", "tce"),
    ("gmf", "wbpr")])
def test_every_backbone_and_method_trains_under_the_linear_recipe(backbone, method):
    extra = {"num_gradual": 2, "drop_rate": 0.2} if method == "tce" else {}
    t = RecTrainer(spec(backbone=backbone, method=method, max_epochs=2, **extra), split=tiny_split())
    metrics = [t.train_epoch() for _ in range(2)]
    assert all(np.isfinite(m["loss"]) for m in metrics)
    assert all(take_row_grads(p) == [] for p in t.method.parameters())  # every row was applied


def test_linear_recipe_resumes_bit_for_bit():
    split = tiny_split()
    a = RecTrainer(spec(method="deca", max_epochs=3), split=split)
    a.train_epoch()
    state = a.state_dict()
    m_a = a.train_epoch()
    b = RecTrainer(spec(method="deca", max_epochs=3), split=split)
    b.load_state_dict(state)
    assert b.train_epoch()["loss"] == m_a["loss"]


# --------------------------------------------------------------------- the spec key
def test_recipe_auto_is_published_on_the_paper_data_and_linear_on_large_csv():
    big, small = LINEAR_RECIPE_MIN_ROWS, LINEAR_RECIPE_MIN_ROWS - 1
    for dataset in ("ml-100k", "ml-100k-paper", "modcloth-paper", "adressa"):
        assert resolve_recipe({"dataset": dataset, "recipe": "auto"}, 10 * big) == "published"
    for dataset in ("csv", "synthetic"):
        assert resolve_recipe({"dataset": dataset, "recipe": "auto"}, big) == "linear"
        assert resolve_recipe({"dataset": dataset, "recipe": "auto"}, small) == "published"
        assert resolve_recipe({"dataset": dataset, "recipe": "published"}, big) == "published"
    assert resolve_recipe({"dataset": "ml-100k", "recipe": "linear"}, 10) == "linear"
    assert get_task("rec").make_spec()["recipe"] == "auto"
    t = RecTrainer(spec(recipe="auto"), split=tiny_split())
    assert t.training_recipe == "published" and type(t.optimizer) is Adam


def test_unknown_recipe_is_a_spec_error_naming_the_key():
    task = get_task("rec")
    with pytest.raises(SpecError, match="'recipe'.*fast.*published, linear"):
        task.validate_spec(task.make_spec(recipe="fast"))


def test_recipe_is_searched_like_any_other_key(tmp_path):
    """A family file with a ``recipe`` choice: the space offers both recipes, each a valid spec."""
    import shutil

    from search_spaces.loader import SPACES_DIR, load_catalog

    shutil.copy(SPACES_DIR / "rec_common.yaml", tmp_path / "rec_common.yaml")
    (tmp_path / "rec_recipe.yaml").write_text(
        "task: rec\nmethods: [normal, deca]\nparams:\n  recipe:\n    distribution: choice\n"
        "    values: [published, linear]\n    grid: [published, linear]\n    start: published\n")
    space = load_catalog(tmp_path).space("rec", "deca")
    assert set(space.params) == {"lr", "l2", "recipe"} and space.grid_size() == 12
    task = get_task("rec")
    for value in space.params["recipe"].values:
        task.validate_spec(task.make_spec(method="deca", recipe=value))


def test_sampler_membership_is_the_same_with_sorted_queries():
    """The binary-search membership (tables too big for the bitmap) sorts large query batches
    first; the answers are those of the unsorted search."""
    from deca_tune.data.sampling import UniformSampler

    split = tiny_split(n_users=300, n_items=400, per_user=30)
    sampler = UniformSampler(split)
    sampler._bitmap = None  # force the binary search
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 300, 5000), rng.integers(0, 400, 5000)
    users[:100], items[:100] = split.train[:100, 0], split.train[:100, 1]
    sampler.sort_queries_from = 1 << 30
    plain = sampler.is_positive(users, items)
    sampler.sort_queries_from = 1
    assert np.array_equal(sampler.is_positive(users, items), plain) and plain[:100].all()
