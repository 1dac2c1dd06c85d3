"""``synthetic``: seeded implicit feedback with planted, recorded noise (offline demos, noise AUC).

Generative story (all vectorised over the ``n_users x n_items`` matrix):

1. True preference: latent factors ``U`` (users) and ``V`` (items); user ``u`` *likes* its top
   ``like_rate`` fraction of items by ``U_u . V_i``.
2. Exposure: item popularity ``pop_i`` is log-normal (``pop_skew``). A liked item is never
   exposed, hence never clicked, with probability ``missing_rate * 2 * (1 - r_i)`` where
   ``r_i`` is the item's popularity percentile (unpopular items are missed more). These
   liked-but-unobserved pairs are the **noisy negatives**; they are in ``meta["liked_unobserved"]``.
3. Noisy positives: on top of the clicked liked items, each user clicks
   ``round(noise_rate / (1 - noise_rate) * n_liked_clicked)`` items it does not like, drawn
   without replacement with probability proportional to popularity (exposure clicks), so that
   about ``noise_rate`` of all observed positives are noise.
4. Clicks get random times and are split per user chronologically 8:1:1. ``train_noisy`` marks
   the training rows that are noisy positives; ``valid_clean``/``test_clean`` are the liked
   held-out clicks; held-out rows whose item never occurs in train are dropped.
   ``train_rating`` is 1 for a liked click and 0 for a noise click; ``meta["valid_noisy"]`` /
   ``meta["test_noisy"]`` flag the held-out rows and ``meta["liked_pairs"]`` lists every liked pair.

Ids are the generated ones (no re-indexing), so ``meta`` pairs index the same users/items.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deca_tune.data import REC_DATASETS
from deca_tune.data.interactions import RecSplit
from deca_tune.data.splits import TEST, TRAIN, VALID, chrono_parts

MAX_CELLS = 50_000_000


def _top_mask(keys: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Boolean mask of each row's ``counts[row]`` largest ``keys`` (vectorised)."""
    order = np.argsort(-keys, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(keys.shape[1])[None, :].repeat(len(keys), 0), axis=1)
    return ranks < counts[:, None]


@REC_DATASETS.register("synthetic")
def load_synthetic(root: Path | None = None, download: bool = True, *, n_users: int = 500,
                   n_items: int = 300, dim: int = 8, like_rate: float = 0.1,
                   missing_rate: float = 0.2, noise_rate: float = 0.25, pop_skew: float = 1.0,
                   seed: int = 0) -> RecSplit:
    """Generate the ``synthetic`` split (``root``/``download`` are unused: nothing is read)."""
    n_users, n_items, dim, seed = int(n_users), int(n_items), int(dim), int(seed)
    for key, value, lo, hi in (("like_rate", like_rate, 0.0, 1.0), ("missing_rate", missing_rate, 0.0, 0.5),
                               ("noise_rate", noise_rate, 0.0, 0.95)):
        if not lo <= float(value) <= hi:
            raise ValueError(f"synthetic: option {key}={value} is outside [{lo}, {hi}]")
    if n_users < 1 or n_items < 2 or dim < 1:
        raise ValueError("synthetic: n_users >= 1, n_items >= 2 and dim >= 1 are required")
    if n_users * n_items > MAX_CELLS:
        raise ValueError(f"synthetic: n_users * n_items = {n_users * n_items} exceeds {MAX_CELLS}")
    rng = np.random.default_rng(seed)

    # 1. true preferences
    U = rng.normal(size=(n_users, dim))
    V = rng.normal(size=(n_items, dim))
    n_like = max(1, int(round(like_rate * n_items)))
    liked = _top_mask(U @ V.T, np.full(n_users, n_like))

    # 2. exposure: unpopular liked items are missed more often
    log_pop = pop_skew * rng.normal(size=n_items)
    pop_pct = (np.argsort(np.argsort(log_pop)) + 0.5) / n_items
    p_miss = np.clip(missing_rate * 2.0 * (1.0 - pop_pct), 0.0, 1.0)
    missed = liked & (rng.random((n_users, n_items)) < p_miss[None, :])
    clicked_liked = liked & ~missed

    # 3. popularity clicks on disliked items (Gumbel top-k = sampling without replacement)
    n_noise = np.rint(noise_rate / (1.0 - noise_rate) * clicked_liked.sum(1)).astype(np.int64)
    n_noise = np.minimum(n_noise, (~liked).sum(1))
    keys = log_pop[None, :] + rng.gumbel(size=(n_users, n_items))
    keys[liked] = -np.inf
    noisy_click = _top_mask(keys, n_noise) & ~liked

    # 4. clicks -> per-user chronological 8:1:1 over random times
    users, items = np.nonzero(clicked_liked | noisy_click)
    is_noise = noisy_click[users, items]
    parts = chrono_parts(users, rng.random(len(users)))
    seen = np.zeros(n_items, dtype=bool)
    seen[items[parts == TRAIN]] = True
    keep = (parts == TRAIN) | seen[items]
    pairs = np.stack([users, items], axis=1).astype(np.int64)
    pick = lambda part, clean_only=False: keep & (parts == part) & (~is_noise if clean_only else True)  # noqa: E731
    return RecSplit(
        name="synthetic", n_users=n_users, n_items=n_items,
        train=pairs[pick(TRAIN)], valid=pairs[pick(VALID)], valid_clean=pairs[pick(VALID, True)],
        test=pairs[pick(TEST)], test_clean=pairs[pick(TEST, True)], ks=(5, 10, 20),
        train_rating=np.where(is_noise[pick(TRAIN)], 0.0, 1.0),
        train_noisy=is_noise[pick(TRAIN)],
        meta={
            "source": "generated",
            "options": {"n_users": n_users, "n_items": n_items, "dim": dim, "like_rate": like_rate,
                        "missing_rate": missing_rate, "noise_rate": noise_rate,
                        "pop_skew": pop_skew, "seed": seed},
            "liked_unobserved": np.argwhere(missed).astype(np.int64),
            "liked_pairs": np.argwhere(liked).astype(np.int64),
            "valid_noisy": is_noise[pick(VALID)],
            "test_noisy": is_noise[pick(TEST)],
            "dropped_unseen_item_valid": int(((parts == VALID) & ~keep).sum()),
            "dropped_unseen_item_test": int(((parts == TEST) & ~keep).sum()),
        },
    )


# --------------------------------------------------------------------------- large files
#: rows generated (and written) per chunk by :func:`write_synthetic_csv`: bounds its memory
CHUNK_ROWS = 1_000_000


def synthetic_sizes(n_interactions: int, n_users: int | None = None,
                    n_items: int | None = None) -> tuple[int, int]:
    """Default users and items for ``n_interactions`` rows: 40 rows per user, 80 per item
    (ML-100K has 106 and 59), so the sizes grow in proportion."""
    n = int(n_interactions)
    return (int(n_users) if n_users else max(10, n // 40),
            int(n_items) if n_items else max(10, n // 80))


def iter_synthetic_rows(n_interactions: int, *, n_users: int | None = None,
                        n_items: int | None = None, noise_rate: float = 0.25,
                        pop_skew: float = 1.0, seed: int = 0, chunk_rows: int = CHUNK_ROWS):
    """Chunks (``pandas.DataFrame`` with ``user, item, rating, timestamp``; integer ids) of a
    synthetic ratings file of exactly ``n_interactions`` rows, at any size in linear time and
    memory bounded by ``chunk_rows``.

    The story is a sparse cousin of ``synthetic``'s: items belong to topics of about 1,000 items
    and have log-normal popularity (``pop_skew``); every user has a favourite topic and a
    log-normal activity (at least one row). A row is a *liked* click (an item of the user's
    topic, by popularity; rating 4 or 5) or, with probability ``noise_rate``, a *noise* click
    (any item, by popularity; mostly rated 1-3, sometimes 4). Times are random over three years.
    Repeated (user, item) pairs happen, as in real logs. Deterministic for a seed and chunk size.
    """
    import pandas as pd

    n = int(n_interactions)
    n_users, n_items = synthetic_sizes(n, n_users, n_items)
    if n < n_users:
        raise ValueError(f"synthetic file: {n} rows cannot give each of {n_users} users one")
    rng = np.random.default_rng([int(seed), 0])
    n_topics = max(1, n_items // 1000)
    item_topic = rng.integers(n_topics, size=n_items)
    pop = np.exp(pop_skew * rng.normal(size=n_items))
    user_topic = rng.integers(n_topics, size=n_users)
    activity = np.exp(0.8 * rng.normal(size=n_users))
    counts = 1 + rng.multinomial(n - n_users, activity / activity.sum())
    # items sorted by topic; topic t covers (t, t + 1] of the cumulative weights
    by_topic = np.argsort(item_topic, kind="stable")
    topic_sorted, pop_sorted = item_topic[by_topic], pop[by_topic]
    topic_total = np.bincount(topic_sorted, weights=pop_sorted, minlength=n_topics)
    within = (np.cumsum(pop_sorted) - np.r_[0, np.cumsum(topic_total)][topic_sorted]) / topic_total[topic_sorted]
    topic_cum = topic_sorted + within
    topic_cum[-1] = n_topics  # guard the last bound against rounding
    global_cum = np.cumsum(pop) / pop.sum()
    global_cum[-1] = 1.0
    ends = np.cumsum(counts)
    user_lo = 0
    chunk = 0
    while user_lo < n_users:
        row_lo = ends[user_lo - 1] if user_lo else 0
        user_hi = int(np.searchsorted(ends, row_lo + chunk_rows, side="right"))
        user_hi = min(max(user_hi, user_lo + 1), n_users)
        crng = np.random.default_rng([int(seed), 1, chunk])
        users = np.repeat(np.arange(user_lo, user_hi), counts[user_lo:user_hi])
        m = len(users)
        noisy = crng.random(m) < noise_rate
        liked_pick = np.minimum(np.searchsorted(topic_cum, user_topic[users] + crng.random(m)),
                                n_items - 1)
        items = np.where(noisy, np.minimum(np.searchsorted(global_cum, crng.random(m)), n_items - 1),
                         by_topic[liked_pick])
        rating = np.where(noisy, crng.choice([1, 2, 3, 4], size=m, p=[0.2, 0.3, 0.35, 0.15]),
                          crng.choice([4, 5], size=m, p=[0.4, 0.6]))
        times = 1_500_000_000 + crng.integers(0, 3 * 365 * 86_400, size=m)
        order = crng.permutation(m)
        yield pd.DataFrame({"user": users[order], "item": items[order],
                            "rating": rating[order], "timestamp": times[order]})
        user_lo, chunk = user_hi, chunk + 1


def write_synthetic_csv(path: str | Path, n_interactions: int, *, text_ids: bool = True,
                        sep: str = ",", **options) -> dict:
    """Write :func:`iter_synthetic_rows` as a ratings file with the header
    ``user,item,rating,timestamp`` (ids ``u12``/``i7`` with ``text_ids``, else integers) for the
    ``csv`` data set. Returns ``{"path", "rows", "users", "items", "bytes"}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as fh:
        for i, frame in enumerate(iter_synthetic_rows(n_interactions, **options)):
            if text_ids:
                frame = frame.assign(user="u" + frame["user"].astype(str),
                                     item="i" + frame["item"].astype(str))
            frame.to_csv(fh, sep=sep, header=i == 0, index=False, lineterminator="\n")
            rows += len(frame)
    tmp.replace(path)
    n_users, n_items = synthetic_sizes(n_interactions, options.get("n_users"), options.get("n_items"))
    return {"path": str(path), "rows": rows, "users": n_users, "items": n_items,
            "bytes": path.stat().st_size}
