import math

import numpy as np
import pytest
import torch

from deca_tune.metrics.ranking import rank_metrics


def fixed_scores(matrix):
    table = torch.tensor(matrix, dtype=torch.float32)
    return lambda users: table[users]


def test_recall_and_ndcg_against_hand_computed_values():
    # user 0 ranks items 0 > 1 > 2 > 3 > 4; item 0 is masked (seen in training).
    # relevant: items 2 and 4 -> ranking after masking: 1, 2, 3, 4 -> hits at ranks 2 and 4.
    # user 1 ranks 4 > 3 > 2 > 1 > 0; relevant: item 4 -> hit at rank 1.
    scores = [[5, 4, 3, 2, 1], [1, 2, 3, 4, 5], [0, 0, 0, 0, 0]]
    relevant = np.array([[0, 2], [0, 4], [1, 4]])
    mask = np.array([[0, 0]])
    res = rank_metrics(fixed_scores(scores), relevant, mask, n_users=3, n_items=5, ks=[1, 2, 3])
    assert res["users"] == 2  # user 2 has no relevant item and is not averaged
    # K=1: user0 top1 = item1 (miss); user1 top1 = item4 (hit)
    assert res["recall@1"] == pytest.approx((0 + 1) / 2)
    assert res["ndcg@1"] == pytest.approx((0 + 1) / 2)
    # K=2: user0 top2 = 1, 2 -> 1 hit of 2 relevant; DCG = 1/log2(3); IDCG = 1 + 1/log2(3)
    u0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert res["recall@2"] == pytest.approx((0.5 + 1) / 2)
    assert res["ndcg@2"] == pytest.approx((u0 + 1) / 2)
    # K=3: user0 top3 = 1, 2, 3 -> same hits as K=2
    assert res["recall@3"] == pytest.approx((0.5 + 1) / 2)
    assert res["ndcg@3"] == pytest.approx((u0 + 1) / 2)


def test_idcg_uses_min_of_relevant_and_k():
    # one user, 3 relevant items all ranked at the top: NDCG@2 must be exactly 1
    relevant = np.array([[0, 0], [0, 1], [0, 2]])
    res = rank_metrics(fixed_scores([[9, 8, 7, 1, 0]]), relevant, np.zeros((0, 2), dtype=np.int64),
                       n_users=1, n_items=5, ks=[2])
    assert res["ndcg@2"] == pytest.approx(1.0)
    assert res["recall@2"] == pytest.approx(2 / 3)


def test_batching_over_users_does_not_change_results():
    rng = np.random.default_rng(0)
    scores = rng.random((50, 30)).tolist()
    relevant = np.stack([rng.integers(0, 50, 200), rng.integers(0, 30, 200)], 1)
    relevant = np.unique(relevant, axis=0)
    mask = np.unique(np.stack([rng.integers(0, 50, 300), rng.integers(0, 30, 300)], 1), axis=0)
    mask = mask[~(mask[:, None, :] == relevant[None]).all(-1).any(1)]
    a = rank_metrics(fixed_scores(scores), relevant, mask, 50, 30, [5, 10], batch_users=7)
    b = rank_metrics(fixed_scores(scores), relevant, mask, 50, 30, [5, 10], batch_users=1000)
    assert a == pytest.approx(b)


# --------------------------------------------------- one scoring pass for several splits
def _random_sets(seed=0, n_users=60, n_items=45):
    rng = np.random.default_rng(seed)

    def pairs(n):
        return np.unique(np.stack([rng.integers(0, n_users, n), rng.integers(0, n_items, n)], 1), axis=0)

    train, valid, test = pairs(500), pairs(80), pairs(80)
    other = pairs(150)  # a mask that is not an extension of train
    test_mask = np.concatenate([train, valid])
    masks = {"valid": (valid, train), "valid_clean": (valid[::2], train), "test": (test, test_mask),
             "test_clean": (test[1::3], test_mask.copy()),  # equal to test's mask, another array
             "odd": (test[::4], other)}
    return masks, n_users, n_items


def test_one_pass_evaluator_equals_one_split_at_a_time():
    from deca_tune.metrics.ranking import RankingEvaluator

    sets, n_users, n_items = _random_sets()
    scores = np.random.default_rng(1).random((n_users, n_items)).tolist()
    calls = []

    def score(users):
        calls.append(len(users))
        return fixed_scores(scores)(users)

    ev = RankingEvaluator(sets, n_users, n_items, [3, 10, 20], batch_users=16)
    together = ev.evaluate(score)
    assert sum(calls) == len(ev.users())  # every user scored once for all five splits
    for name, (relevant, mask) in sets.items():
        alone = rank_metrics(fixed_scores(scores), relevant, mask, n_users, n_items, [3, 10, 20], batch_users=7)
        assert together[name] == pytest.approx(alone, abs=1e-12), name
    sub = ev.evaluate(fixed_scores(scores), ["test_clean"])
    assert list(sub) == ["test_clean"] and sub["test_clean"] == pytest.approx(together["test_clean"])


def test_evaluator_counts_users_with_relevant_items_only():
    from deca_tune.metrics.ranking import RankingEvaluator

    relevant = np.array([[0, 1], [2, 3]])
    ev = RankingEvaluator({"a": (relevant, np.zeros((0, 2), dtype=np.int64)),
                           "empty": (np.zeros((0, 2), dtype=np.int64), np.zeros((0, 2), dtype=np.int64))},
                          n_users=4, n_items=5, ks=[2])
    res = ev.evaluate(fixed_scores([[0, 9, 0, 0, 0], [0] * 5, [5, 9, 0, 0, 1], [0] * 5]))
    assert res["a"]["users"] == 2 and res["a"]["recall@2"] == pytest.approx(0.5)
    assert res["empty"] == {"recall@2": 0.0, "ndcg@2": 0.0, "users": 0.0}


@pytest.mark.parametrize("n_items", [256 * 160, 256 * 160 + 77, 50_000])
def test_block_top_k_equals_torch_topk(n_items):
    """The block top-k (many items) returns torch.topk's values, and its columns hold them;
    masked (-inf) entries, the partial last block and a row whose best items share one block
    included."""
    from deca_tune.metrics.ranking import TOPK_BLOCK, top_k_indices

    g = torch.Generator().manual_seed(n_items)
    scores = torch.randn(7, n_items, generator=g)
    scores[0, : n_items // 2] = float("-inf")            # half the row masked
    scores[1, 3 * TOPK_BLOCK: 3 * TOPK_BLOCK + 30] = 50.0  # the top 30 in one block (ties)
    scores[2, -5:] = 40.0 + torch.arange(5.0)            # the best items in the last block
    scores[3] = scores[3].round()                        # many ties
    for k in (1, 20):
        ref = torch.topk(scores, k, dim=1)
        values, idx = top_k_indices(scores, k, values=True)
        assert torch.equal(values, ref.values)
        assert torch.equal(scores.gather(1, idx), ref.values)   # the columns hold those values
        assert all(len(set(row.tolist())) == k for row in idx)  # no column twice
        assert torch.equal(top_k_indices(scores, k), idx)
        untied = [4, 5, 6, 2]
        assert torch.equal(idx[untied], ref.indices[untied])


def test_block_top_k_rank_metrics_match_the_plain_top_k(monkeypatch):
    """Full ranking through the block top-k gives the plain top-k's metrics (random scores:
    no ties), with the CPU batch cap cutting the users into several batches."""
    import deca_tune.metrics.ranking as ranking

    rng = np.random.default_rng(3)
    n_users, n_items = 40, 256 * 170
    table = torch.tensor(rng.standard_normal((n_users, n_items)), dtype=torch.float32)
    relevant = np.stack([np.repeat(np.arange(n_users), 5), rng.integers(0, n_items, n_users * 5)], 1)
    mask = np.stack([np.repeat(np.arange(n_users), 50), rng.integers(0, n_items, n_users * 50)], 1)
    relevant = relevant[~np.isin(relevant[:, 0] * n_items + relevant[:, 1], mask[:, 0] * n_items + mask[:, 1])]
    # lift the relevant items by random amounts: some reach the top 20, some not
    table[relevant[:, 0], relevant[:, 1]] += torch.tensor(rng.uniform(0, 6, len(relevant)), dtype=torch.float32)
    fast = rank_metrics(lambda u: table[u], relevant, mask, n_users, n_items, [5, 20])
    monkeypatch.setattr(ranking, "CPU_SCORE_BYTES", 4 * n_items * 7)  # batches of 7 users
    assert ranking.score_batch_users(1024, n_items, torch.device("cpu")) == 7
    monkeypatch.setattr(ranking, "BLOCK_MIN_BLOCKS", 10**6)  # torch.topk everywhere
    plain = rank_metrics(lambda u: table[u], relevant, mask, n_users, n_items, [5, 20])
    assert fast["users"] == plain["users"] == n_users
    for key in ("recall@5", "ndcg@5", "recall@20", "ndcg@20"):
        assert fast[key] == pytest.approx(plain[key], rel=1e-12), key
    assert 0.1 < fast["recall@20"] < 0.9  # hits and misses, so the comparison says something


def test_score_batch_users_bounds_the_cpu_score_matrix():
    from deca_tune.metrics.ranking import CPU_SCORE_BYTES, score_batch_users

    cpu = torch.device("cpu")
    assert score_batch_users(1024, 1682, cpu) == 1024               # small catalogues: as asked
    assert score_batch_users(1024, 125_000, cpu) * 125_000 * 4 <= CPU_SCORE_BYTES
    assert score_batch_users(1024, 10**9, cpu) == 1                 # never zero
    assert score_batch_users(1024, 125_000, torch.device("meta")) == 1024  # other devices: as asked
