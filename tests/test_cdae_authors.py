"""The DeCA authors' CDAE (``cdae``), its rows batching, loss and L2, and the authors' early stopping
(issue 10, part 2/3): hand-computed values of the form their code has (github wangyu-ustc/DeCA,
CDAE.py, train.py:CDAE_train, train.py:195-203)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from deca_tune.data.interactions import RecSplit
from deca_tune.data.sampling import sample_zero_entries
from deca_tune.models.rec import build_backbone
from deca_tune.models.rec.base import recipe_of
from deca_tune.models.rec.cdae import reference_item_counts
from deca_tune.training.rec_trainer import RecTrainer, row_batches

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: 4 users x 5 items; user 0 has no interaction (like ML-100K's phantom user 0)
TRAIN = np.array([[1, 0], [1, 2], [2, 0], [2, 1], [2, 3], [3, 2], [3, 4]])


def small_split(n_items: int = 5) -> RecSplit:
    valid = np.array([[1, 1], [2, 4], [3, 0]])
    test = np.array([[1, 3], [2, 2], [3, 1]])
    return RecSplit("small", 4, n_items, TRAIN, valid, valid, test, test, ks=(3,),
                    train_rating=np.full(len(TRAIN), 5.0))


def dense(split: RecSplit) -> torch.Tensor:
    r = torch.zeros(split.n_users, split.n_items)
    r[split.train[:, 0], split.train[:, 1]] = 1.0
    return r


def trainer(split: RecSplit | None = None, **kw) -> RecTrainer:
    spec = {"backbone": "cdae", "method": "normal", "max_epochs": 2, "batch_size": 2048, "seed": 0,
            "device": "cpu", "l2": 0.0, "pretrain_cache": "off", **kw}
    return RecTrainer(spec, split=split or small_split())


# --------------------------------------------------------------------------- the model
def test_recipe_and_defaults_are_the_authors():
    split = small_split()
    m = build_backbone("cdae", split)
    assert recipe_of(m).batching == "rows" and recipe_of(m).l2 == "norm" and recipe_of(m).reduction == "sum"
    assert m.corruption == 0.5 and m.user_node.embedding_dim == 32
    assert recipe_of(build_backbone("cdae-pairwise", split)).batching == "pairs"
    assert recipe_of(build_backbone("gmf", split)).l2 == "squared"


def test_inits_are_pytorch_defaults_of_their_modules():
    torch.manual_seed(0)
    split = RecSplit("big", 50, 400, np.array([[u, (7 * u) % 400] for u in range(50)]),
                     np.zeros((0, 2), int), np.zeros((0, 2), int), np.zeros((0, 2), int),
                     np.zeros((0, 2), int), ks=(3,))
    m = build_backbone("cdae", split)
    assert m.encoder.weight.abs().max() <= 1 / math.sqrt(400) and m.encoder_bias.abs().max() <= 1 / math.sqrt(400)
    assert m.decoder.weight.abs().max() <= 1 / math.sqrt(32) and m.decoder_bias.abs().max() <= 1 / math.sqrt(32)
    assert 0.9 < float(m.user_node.weight.detach().std()) < 1.1  # nn.Embedding default N(0, 1)


def test_normalisation_by_hand():
    """x_ui = R_ui / sqrt(||R_u|| ||R_:,i||), the item norm over the rows of the batch."""
    split = small_split()
    m = build_backbone("cdae", split)
    m.train()
    items, offsets, x = m.input_weights(torch.tensor([1, 3]))
    # batch rows {1: items 0, 2}, {3: items 2, 4}: ||R_1|| = ||R_3|| = sqrt 2; batch item counts
    # m_0 = 1, m_2 = 2, m_4 = 1
    want = {(1, 0): (2 * 1) ** -0.25, (1, 2): (2 * 2) ** -0.25, (3, 2): (2 * 2) ** -0.25, (3, 4): (2 * 1) ** -0.25}
    got = {}
    bounds = list(offsets.tolist()) + [len(items)]
    for r, u in enumerate([1, 3]):
        for j in range(bounds[r], bounds[r + 1]):
            got[(u, int(items[j]))] = float(x[j])
    assert got == pytest.approx(want)
    # all users in one batch (ML-100K): the item norm is the item's full count
    items, _, x = m.input_weights(torch.tensor([1, 2, 3]))
    assert float(x[(items == 2).nonzero()[0, 0]]) == pytest.approx((2 * 2) ** -0.25)
    assert float(x[(items == 0).nonzero()[0, 0]]) == pytest.approx((2 * 2) ** -0.25)


def test_hidden_and_output_equal_their_dense_forward():
    """Corruption off: our sparse encoder equals CDAE.py's dense forward on the batch matrix."""
    split = small_split()
    torch.manual_seed(1)
    m = build_backbone("cdae", split, corruption=0.0)
    m.train()
    users = torch.tensor([1, 2, 3])
    r = dense(split)[users]
    norm = torch.sqrt(r.norm(2, 1).view(-1, 1) @ r.norm(2, 0).view(1, -1))
    norm = norm.masked_fill(norm == 0, 1e-10)
    enc = (r / norm) @ m.encoder.weight + m.encoder_bias + m.user_node(users)
    out = torch.sigmoid(torch.tanh(enc) @ m.decoder.weight.T + m.decoder_bias)
    torch.testing.assert_close(torch.sigmoid(m.score_all(users)), out)
    pairs = m(torch.tensor([3, 1, 2]), torch.tensor([4, 0, 1]))
    torch.testing.assert_close(torch.sigmoid(pairs), out[[2, 0, 1], [4, 0, 1]])


def test_corruption_is_inverted_dropout_on_the_input():
    split = small_split()
    m = build_backbone("cdae", split)
    m.train()
    torch.manual_seed(0)
    h1 = m.hidden(torch.tensor([1, 2, 3]))
    torch.manual_seed(0)
    h2 = m.hidden(torch.tensor([1, 2, 3]))
    torch.testing.assert_close(h1, h2)
    m.eval()
    torch.testing.assert_close(m.hidden(torch.tensor([1, 2, 3])), m.hidden(torch.tensor([1, 2, 3])))


def test_evaluation_reference_counts():
    counts = torch.tensor([1.0, 5.0, 100.0])
    # one batch holds every user: the full counts (ML-100K, 944 users, batch 2048)
    torch.testing.assert_close(reference_item_counts(counts, 944, 2048), counts)
    # 2048 of 44,784 users: 1 + (c - 1) * 2047 / 44783
    want = 1 + (counts - 1) * 2047 / 44783
    torch.testing.assert_close(reference_item_counts(counts, 44784, 2048), want)
    m = build_backbone("cdae", small_split(), batch_users=2)
    m.eval()
    items, _, x = m.input_weights(torch.tensor([2]))
    # user 2 (items 0, 1, 3), n_users 4, B 2: m_0 = 1 + (2 - 1) * 1/3
    assert float(x[0]) == pytest.approx((3 * (1 + 1 / 3)) ** -0.25)


# --------------------------------------------------------------------- the rows batching
def test_sample_zero_entries_by_brute_force():
    rng = np.random.default_rng(0)
    for t in range(100):
        n_rows, n_items = int(rng.integers(1, 6)), int(rng.integers(1, 7))
        mat = rng.random((n_rows, n_items)) < 0.4
        rows, items = np.nonzero(mat)
        n_zero = int((~mat).sum())
        if n_zero == 0:
            continue
        k = int(rng.integers(1, n_zero + 1))
        r, i = sample_zero_entries(n_rows, rows, items, n_items, k, np.random.default_rng(t))
        assert len(r) == k and len(set(zip(r.tolist(), i.tolist()))) == k  # without replacement
        assert not mat[r, i].any()  # never a positive
        # uniform: the k picked indices of the zero cells in row-major order
        z = np.sort(np.random.default_rng(t).choice(n_zero, size=k, replace=False))
        assert np.array_equal(np.sort(r * n_items + i), np.flatnonzero(~mat.ravel())[z])
    with pytest.raises(ValueError, match="zero entries"):
        sample_zero_entries(1, np.array([0]), np.array([0]), 2, 2, rng)


def test_row_batches_counts_and_entries():
    split = small_split(n_items=12)
    t = trainer(batch_size=2, neg_ratio=2, split=split)
    assert t.row_batching
    batches = list(row_batches(t))
    train = {tuple(p) for p in split.train.tolist()}
    seen_users = []
    for users, pos, neg, neg_users in batches:
        rows = set(users.tolist())
        assert len(rows) <= 2
        assert {tuple(p) for p in zip(users.tolist(), pos.tolist())} == {p for p in train if p[0] in rows}
        assert len(neg) == 2 * len(pos)  # #pos x neg_ratio zero entries
        negs = list(zip(neg_users.tolist(), neg.tolist()))
        assert len(set(negs)) == len(negs) and not set(negs) & train  # distinct, never a positive
        assert set(neg_users.tolist()) <= rows  # from the batch's own rows
        seen_users += sorted(rows)
    assert sorted(seen_users) == [1, 2, 3]  # every user with positives once, the empty user 0 dropped


def test_methods_without_neg_users_get_pairs():
    split = small_split()
    assert trainer(method="deca", split=split).row_batching
    assert trainer(method="deca_p", split=split).row_batching
    # T-CE and R-CE need no pairing (issue 17: they train as normal does, on rows)
    assert trainer(method="tce", split=split).row_batching
    assert trainer(method="rce", split=split).row_batching
    assert trainer(method="ensemble", split=split).row_batching  # the twin draws its own rows
    assert not trainer(method="wbpr", split=split).row_batching  # BPR pairs a negative with its positive
    assert not trainer(backbone="cdae-pairwise", split=split).row_batching


# ------------------------------------------------------------------------- losses and L2
def test_normal_loss_is_summed_bce_on_the_entries():
    t = trainer()
    users, pos, neg, neg_users = next(iter(row_batches(t)))
    torch.manual_seed(3)
    loss, _ = t.batch_loss((users, pos, neg, neg_users))
    torch.manual_seed(3)
    with torch.no_grad():
        logits = t.method.f(torch.cat([users, neg_users]), torch.cat([pos, neg]))
    p = torch.sigmoid(logits)
    n = len(pos)
    want = -(torch.log(p[:n]).sum() + torch.log(1 - p[n:]).sum())
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-5)


def _deca_terms_by_hand(t: RecTrainer, users, pos, neg, neg_users):
    """DeCA's DP per-entry terms (C1 = 100, alpha = 0.5) on a row batch, by hand: ``(agreement,
    positive term, negative term, n_pos)``; the caller reduces them."""
    mth = t.method
    sig = torch.sigmoid
    with torch.no_grad():
        f = sig(mth.f(torch.cat([users, neg_users]), torch.cat([pos, neg])))
        g = sig(mth.g(torch.cat([users, neg_users]), torch.cat([pos, neg])))
        h = sig(mth.h(torch.cat([users, neg_users]), torch.cat([pos, neg])))
    n = len(pos)
    lg = lambda x: torch.log(x.clamp_min(1e-6))  # noqa: E731

    def kl(p, q):  # KL(Bernoulli p || Bernoulli q)
        return p * (lg(p) - lg(q)) + (1 - p) * (lg(1 - p) - lg(1 - q))

    agree = 0.5 * kl(g, f) + 0.5 * kl(f, g)
    pos_term = lg(h[:n]) * (1 - f[:n])
    neg_term = lg(1 - h[n:]) * (1 - f[n:]) - 100.0 * f[n:]
    return agree, pos_term, neg_term, n


@pytest.mark.parametrize("backward", ["autograd", "fused"])
@pytest.mark.parametrize("reduction", ["authors", "recipe"])
def test_deca_on_row_batches_reduction(reduction, backward):
    """``loss_reduction: authors``: their CDAE branch, mean_pos + mean_neg with no ``* NSR``;
    ``recipe`` (default): summed over every entry, as ``normal``'s BCE on the authors' CDAE."""
    kw = {"loss_backward": backward, **({} if reduction == "recipe" else {"loss_reduction": "authors"})}
    t = trainer(method="deca", neg_ratio=2, C0=10.0, C1=100.0, alpha=0.5, split=small_split(n_items=12), **kw)
    users, pos, neg, neg_users = next(iter(row_batches(t)))
    torch.manual_seed(4)
    loss, _ = t.method.batch_loss(users, pos, neg, 0, neg_users=neg_users)  # step 0: DP
    torch.manual_seed(4)
    agree, pos_term, neg_term, n = _deca_terms_by_hand(t, users, pos, neg, neg_users)
    if reduction == "authors":
        want = (agree[:n] - pos_term).mean() + (agree[n:] - neg_term).mean()
    else:
        want = (agree[:n] - pos_term).sum() + (agree[n:] - neg_term).sum()
    assert len(neg) > n > 1  # the two reductions differ on this batch
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-5)


def test_deca_loss_scale_is_normals_on_cdae():
    """One ``l2`` weighs the same against DeCA's loss as against ``normal``'s: on the authors'
    CDAE both sum their per-entry terms, so loss / (mean per-entry term) is the number of entries
    for both. Under ``authors`` (mean_pos + mean_neg) it is at most entries x (1/n_pos + 1/n_neg),
    here ~5 instead of 21 (on ML-100K ~80,000 times smaller)."""
    split = small_split(n_items=12)
    deca_kw = {"neg_ratio": 2, "C0": 10.0, "C1": 100.0, "alpha": 0.5}
    normal = trainer(method="normal", neg_ratio=2, split=split)
    users, pos, neg, neg_users = next(iter(row_batches(normal)))
    n_pos, n_neg = len(pos), len(neg)
    entries = n_pos + n_neg
    torch.manual_seed(5)
    bce, _ = normal.batch_loss((users, pos, neg, neg_users))
    torch.manual_seed(5)
    with torch.no_grad():
        p = torch.sigmoid(normal.method.f(torch.cat([users, neg_users]), torch.cat([pos, neg])))
    mean_bce = float(-(torch.log(p[:n_pos]).sum() + torch.log(1 - p[n_pos:]).sum())) / entries
    assert float(bce.detach()) / mean_bce == pytest.approx(entries, rel=1e-5)
    ratios = {}
    for reduction in ("recipe", "authors"):
        t = trainer(method="deca", split=split, loss_reduction=reduction, **deca_kw)
        torch.manual_seed(5)
        loss, _ = t.method.batch_loss(users, pos, neg, 0, neg_users=neg_users)
        torch.manual_seed(5)
        agree, pos_term, neg_term, _ = _deca_terms_by_hand(t, users, pos, neg, neg_users)
        mean_term = float(torch.cat([agree[:n_pos] - pos_term, agree[n_pos:] - neg_term]).mean())
        ratios[reduction] = float(loss.detach()) / mean_term
    assert ratios["recipe"] == pytest.approx(entries, rel=1e-5)
    assert ratios["authors"] <= entries * (1 / n_pos + 1 / n_neg) * (1 + 1e-5) < entries / 3


def test_deca_reductions_agree_on_pairs():
    """On a pairs backbone (``normal`` takes means) both settings are one computation."""
    split = small_split(n_items=12)
    got = []
    for kw in ({}, {"loss_reduction": "authors"}):
        t = RecTrainer({"backbone": "gmf", "method": "deca", "seed": 0, "device": "cpu", "batch_size": 8,
                        "neg_ratio": 2, "pretrain_cache": "off", **kw}, split=split)
        users, pos, neg = next(iter(t.batches()))
        got.append(float(t.method.batch_loss(users, pos, neg, 1)[0].detach()))
    assert got[0] == got[1]


def test_loss_reduction_is_checked():
    from deca_tune.tasks.base import SpecError

    with pytest.raises(SpecError, match="loss_reduction"):
        trainer(method="deca", loss_reduction="sum")


def test_l2_forms():
    t = trainer(l2=0.3)
    want = 0.3 * sum(float(p.detach().norm(2)) for p in t.method.f.parameters())
    assert float(t.l2_penalty().detach()) == pytest.approx(want, rel=1e-6)
    g = trainer(backbone="gmf", l2=0.3)
    want = 0.3 / (2 * 4) * sum(float(p.detach().pow(2).sum()) for p in g.method.f.parameters())
    assert float(g.l2_penalty().detach()) == pytest.approx(want, rel=1e-6)
    assert trainer(l2=0.0).l2_penalty() == 0.0


def test_cdae_trains_and_resumes_exactly():
    a = trainer(method="deca", max_epochs=3)
    ref = [a.train_epoch() for _ in range(3)]
    b = trainer(method="deca", max_epochs=3)
    b.train_epoch()
    state = b.state_dict()
    c = trainer(method="deca", max_epochs=3)
    c.load_state_dict(state)
    rest = [c.train_epoch() for _ in range(2)]
    assert [r["loss"] for r in ref[1:]] == [r["loss"] for r in rest]


# ---------------------------------------------------------------- the authors' early stopping
def es_trainer(values, **kw):
    t = RecTrainer({"backbone": "gmf", "max_epochs": 50, "batch_size": 4, "seed": 0, "device": "cpu",
                    "l2": 0.0, "early_stop": "authors", "early_stop_every": 3, "restore_best": False, **kw},
                   split=small_split())
    seq = iter(values)
    t.authors_stop.validation_loss = lambda trainer: next(seq)
    return t


def test_authors_early_stop_counts_rises_and_stops_mid_epoch():
    # 7 training pairs, batch 4: 2 steps per epoch; evaluations after iterations 3, 6, 9, ... (0-based)
    t = es_trainer([5.0, 4.0, 6.0, 5.5, 7.0, 1.0])
    t.fit()
    es = t.authors_stop
    # rises at the 3rd (6 > 4) and 5th (7 > 5.5) evaluation; 5.5 < 6 does not reset the count
    assert [s for s, _ in es.history] == [4, 7, 10, 13, 16] and es.rises == 2
    assert t.stopped_early and t.step == 16 and t.epoch == 8  # iteration 15 = 1st step of epoch 8
    assert t.finished


def test_authors_early_stop_never_fires_without_two_rises():
    t = es_trainer([3.0, 2.0, 4.0] + [1.0] * 100, max_epochs=10)
    t.fit()
    assert not t.stopped_early and t.epoch == 10 and t.authors_stop.rises == 1


def test_authors_validation_loss_by_hand_and_training_stream_unchanged():
    split = small_split()
    spec = {"backbone": "gmf", "max_epochs": 2, "batch_size": 4096, "seed": 0, "device": "cpu", "l2": 0.0}
    t = RecTrainer({**spec, "early_stop": "authors"}, split=split)
    es = t.authors_stop
    assert es.split_name == "valid"  # no paper_masks: the selection split of the protocol
    state = es.rng.bit_generator.state
    loss = es.validation_loss(t)
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    neg = es.sampler.sample(split.valid[:, 0], 1, rng)[:, 0]
    assert not {(int(u), int(j)) for u, j in zip(split.valid[:, 0], neg)} & {tuple(p) for p in TRAIN.tolist()}
    with torch.no_grad():
        f = t.method.f
        p = torch.sigmoid(f(torch.as_tensor(split.valid[:, 0]), torch.as_tensor(split.valid[:, 1])))
        q = torch.sigmoid(f(torch.as_tensor(split.valid[:, 0]), torch.as_tensor(neg)))
    want = -(torch.log(p).sum() + torch.log(1 - q).sum()) / (2 * len(p))  # one batch: the mean
    assert loss == pytest.approx(float(want), rel=1e-5)
    # the rule has its own generator: the training numbers are those of a run without it
    plain = RecTrainer(spec, split=split)
    assert t.train_epoch()["loss"] == plain.train_epoch()["loss"]


def test_authors_early_stop_uses_their_valid_rating_file():
    split = small_split()
    split.meta["paper_masks"] = "valid_clean"
    t = RecTrainer({"backbone": "gmf", "seed": 0, "device": "cpu", "early_stop": "authors"}, split=split)
    assert t.authors_stop.split_name == "valid_clean"


def test_early_stop_spec_is_checked():
    from deca_tune.tasks import SpecError

    with pytest.raises(SpecError, match="early_stop"):
        RecTrainer({"backbone": "gmf", "device": "cpu", "early_stop": "sometimes"}, split=small_split())


# ------------------------------------------------------------------- their CDAE test, fixed
def test_fix_cdae_eval_patches(tmp_path):
    from deca_tune.bench import authors as A

    root = Path("/work/authors/DeCA")
    if not (root / "evaluate.py").is_file():
        pytest.skip("no checkout of the authors' code at /work/authors/DeCA")
    dest = A.prepare_checkout(root, tmp_path, fix_cdae_eval=True)
    ev = (dest / "evaluate.py").read_text()
    assert "batch_pred_matrix[_r, user_pos.get(_u, [])] = float('-inf')" in ev
    assert "self.model.eval()  # deca_tune fix_cdae_eval" in (dest / "train.py").read_text()
    plain = A.prepare_checkout(root, tmp_path / "plain")
    assert "fix_cdae_eval" not in (plain / "evaluate.py").read_text()


# ------------------------------------------------------------- DeCA's first batch as theirs
def test_first_batch_both_by_hand():
    """``first_batch: both``: step 0 uses log(1-h)(1-f) + log(1-h') f on positives and negatives
    and trains both noise models; then DP, DN, ... (their denoise_type 'both' -> DP -> DN)."""
    t = RecTrainer({"backbone": "gmf", "method": "deca", "seed": 0, "device": "cpu", "batch_size": 8,
                    "first_batch": "both", "alpha": 0.25}, split=small_split())
    mth = t.method
    assert [mth.subtask(i) for i in range(4)] == ["both", "dp", "dn", "dp"]
    users, pos, neg = next(iter(t.batches()))
    mth.zero_grad(set_to_none=True)
    loss, _ = mth.batch_loss(users, pos, neg, 0)
    loss.backward()
    assert all(p.grad is not None for p in (*mth.h.parameters(), *mth.h_prime.parameters()))
    with torch.no_grad():
        sig = torch.sigmoid
        n = neg.reshape(-1)
        f, g, h, hp = (sig(m(torch.cat([users, users]), torch.cat([pos, n]))) for m in
                       (mth.f, mth.g, mth.h, mth.h_prime))
        lg = lambda x: torch.log(x.clamp_min(1e-6))  # noqa: E731
        kl = lambda p, q: p * (lg(p) - lg(q)) + (1 - p) * (lg(1 - p) - lg(1 - q))  # noqa: E731
        per = 0.25 * kl(g, f) + 0.75 * kl(f, g) - (lg(1 - h) * (1 - f) + lg(1 - hp) * f)
        b = len(pos)
        want = per[:b].mean() + per[b:].mean()
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-5)
    assert RecTrainer({"backbone": "gmf", "method": "deca-dp", "seed": 0, "device": "cpu",
                       "first_batch": "both"}, split=small_split()).method.subtask(0) == "dp"
