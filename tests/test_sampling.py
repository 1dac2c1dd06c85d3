import numpy as np
import pytest

from deca_tune.data.interactions import RecSplit
from deca_tune.data.sampling import SAMPLERS
from tests.helpers_rec import tiny_split


@pytest.mark.parametrize("name", ["uniform", "popularity"])
def test_never_returns_a_training_positive_and_is_seeded(name):
    split = tiny_split(n_users=20, n_items=12, per_user=9)  # dense: 7 of 12 items are positives
    sampler = SAMPLERS.get(name)(split)
    users = np.repeat(np.arange(20), 50)
    neg = sampler.sample(users, 3, np.random.default_rng(1))
    assert neg.shape == (1000, 3)
    positives = {tuple(p) for p in split.train}
    assert not any((int(u), int(i)) in positives for u, row in zip(users, neg) for i in row)
    again = sampler.sample(users, 3, np.random.default_rng(1))
    np.testing.assert_array_equal(neg, again)


def test_popularity_sampler_prefers_popular_items():
    # item 0 appears in many users' training rows; users 0..9 never interacted with it
    train = np.array([[u, 0] for u in range(10, 60)] + [[u, 1] for u in range(0, 60)]
                     + [[u, 2 + u % 3] for u in range(60)])
    split = RecSplit("pop", 60, 10, train, train[:1], train[:1], train[:1], train[:1])
    users = np.repeat(np.arange(10), 200)
    pop = SAMPLERS.get("popularity")(split).sample(users, 1, np.random.default_rng(0)).ravel()
    uni = SAMPLERS.get("uniform")(split).sample(users, 1, np.random.default_rng(0)).ravel()
    assert (pop == 0).mean() > 2 * (uni == 0).mean()


def test_user_with_every_item_is_an_error():
    train = np.array([[0, 0], [0, 1], [1, 0]])
    split = RecSplit("full", 2, 2, train, train[:1], train[:1], train[:1], train[:1])
    with pytest.raises(ValueError, match="user 0"):
        SAMPLERS.get("uniform")(split).sample(np.array([0, 1]), 1, np.random.default_rng(0))


def test_bitmap_and_binary_search_give_the_same_draws(monkeypatch):
    """The boolean-table membership test (small data) and the binary search (large data) are
    the same function: the same seed draws the same negatives."""
    import numpy as np

    from deca_tune.data import load_dataset
    from deca_tune.data.sampling import SAMPLERS

    split = load_dataset("rec", "synthetic", n_users=60, n_items=40)
    draws = {}
    for cells in (1 << 25, 0):
        for name in ("uniform", "popularity"):
            cls = SAMPLERS.get(name)
            monkeypatch.setattr(cls, "bitmap_cells", cells)
            sampler = cls(split)
            assert (sampler._bitmap is not None) == (cells > 0)
            draws[(name, cells)] = sampler.sample(split.train[:, 0], 3, np.random.default_rng(5))
    for name in ("uniform", "popularity"):
        assert np.array_equal(draws[(name, 1 << 25)], draws[(name, 0)])
