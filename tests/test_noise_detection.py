"""Noise-detection metrics against hand-worked values and a brute-force pair count."""
from __future__ import annotations

import numpy as np
import pytest

from deca_tune.metrics.noise_detection import (clean_labels, noise_detection_auc,
                                               precision_at_noise_rate)


def test_auc_by_hand():
    # clean 0.9, 0.3 vs noisy 0.8, 0.1: pairs won 0.9>0.8, 0.9>0.1, 0.3>0.1; lost 0.3<0.8 -> 3/4
    assert noise_detection_auc([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0]) == pytest.approx(0.75)
    # a tie counts one half: (0.5 vs 0.5) + (0.5 vs 0.2) = 1.5 of 2 pairs
    assert noise_detection_auc([0.5, 0.5, 0.2], [1, 0, 0]) == pytest.approx(0.75)
    assert noise_detection_auc([1.0, 2.0], [1, 0]) == 0.0
    assert np.isnan(noise_detection_auc([0.1, 0.2], [1, 1]))


def test_auc_matches_pair_count_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, size=300).astype(float)  # many ties
    clean = rng.random(300) < 0.7
    c, n = scores[clean][:, None], scores[~clean][None, :]
    brute = ((c > n).sum() + 0.5 * (c == n).sum()) / (c.size * n.size)
    assert noise_detection_auc(scores, clean) == pytest.approx(brute, rel=1e-12)


def test_precision_at_noise_rate_by_hand():
    # 2 noisy; the two lowest are 0.1 (noisy) and 0.2 (clean) -> 1/2
    assert precision_at_noise_rate([0.1, 0.2, 0.3, 0.9], [0, 1, 0, 1]) == pytest.approx(0.5)
    # tie at the threshold: 0.1 (noisy) + one of the two 0.5s (one noisy, one clean) -> 1.5/2
    assert precision_at_noise_rate([0.1, 0.5, 0.5, 0.9], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert precision_at_noise_rate([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="length"):
        noise_detection_auc([0.1, 0.2], [1])


def test_clean_labels_from_ratings_and_planted_truth():
    from deca_tune.data.interactions import RecSplit

    e = np.zeros((0, 2), dtype=np.int64)
    pairs = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    split = RecSplit("t", 2, 2, pairs, e, e, e, e, train_rating=np.array([5, 3, 2, 4.0]))
    assert clean_labels(split).tolist() == [1, -1, 0, 1]
    split.train_noisy = np.array([True, False, False, True])
    assert clean_labels(split).tolist() == [0, 1, 1, 0]
