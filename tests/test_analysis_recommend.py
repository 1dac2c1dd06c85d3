"""``python -m deca_tune.recommend``: top-K from a saved trainer checkpoint, with the items the
run's protocol masked (default), the training items or the paper protocol's mask excluded."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from deca_tune.training.checkpoints import find_checkpoint, load_trainer
from deca_tune.recommend import main as recommend_main
from deca_tune.recommend import recommend
from deca_tune.training import build_trainer

SPEC = {"task": "rec", "dataset": "synthetic", "backbone": "gmf", "method": "normal", "seed": 3,
        "max_epochs": 2, "device": "cpu", "dataset_options": {"n_users": 60, "n_items": 50}}


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    """A trial folder as the trainable writes it: checkpoint_<n>/trainer.pt per epoch."""
    folder = tmp_path_factory.mktemp("trial")
    trainer = build_trainer(SPEC)
    for epoch in range(2):
        trainer.train_epoch()
        (folder / f"checkpoint_{epoch:06d}").mkdir()
        torch.save(trainer.state_dict(), folder / f"checkpoint_{epoch:06d}" / "trainer.pt")
    return folder, trainer


def test_finds_the_latest_checkpoint(trial, tmp_path) -> None:
    folder, _ = trial
    assert find_checkpoint(folder) == folder / "checkpoint_000001" / "trainer.pt"
    assert find_checkpoint(folder / "checkpoint_000000") == folder / "checkpoint_000000" / "trainer.pt"
    with pytest.raises(FileNotFoundError, match="no trainer.pt"):
        find_checkpoint(tmp_path)


def test_top_k_masks_training_items_and_matches_a_direct_ranking(trial) -> None:
    folder, trained = trial
    recs = recommend(folder, users=["0", "7", "59"], k=5, mask="train")
    assert list(recs.columns) == ["user", "rank", "item", "score", "user_index", "item_index"]
    assert len(recs) == 15 and recs.groupby("user")["rank"].apply(list).tolist() == [[1, 2, 3, 4, 5]] * 3
    split = trained.split
    seen = {(int(u), int(i)) for u, i in split.train}
    assert not any((u, i) in seen for u, i in zip(recs["user_index"], recs["item_index"]))
    # independent check: rank the best-epoch model's scores of user 7 by hand
    loaded = load_trainer(folder)
    with torch.no_grad():
        scores = loaded.method.score_all(torch.tensor([7]))[0].numpy()
    allowed = [i for i in range(split.n_items) if (7, i) not in seen]
    expected = sorted(allowed, key=lambda i: -scores[i])[:5]
    got = recs[recs["user_index"] == 7].sort_values("rank")
    assert got["item_index"].tolist() == expected
    assert np.allclose(got["score"], scores[expected], atol=1e-6)
    assert (np.diff(got["score"].to_numpy()) <= 0).all()


def test_default_mask_is_the_protocols_test_mask(trial) -> None:
    """Issue 12: by default the rankings are those the reported test metrics scored: the
    trainer's ``test_mask`` (training items + validation items disjoint from the test set)."""
    folder, trained = trial
    split = trained.split
    users = [str(u) for u in range(20)]

    def pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
        return set(zip(frame["user_index"].astype(int), frame["item_index"].astype(int)))

    default = pairs(recommend(folder, users=users, k=10))
    protocol = {(int(u), int(i)) for u, i in trained.test_mask}
    valid_only = {(int(u), int(i)) for u, i in split.valid} - {(int(u), int(i)) for u, i in split.train}
    assert valid_only and valid_only <= protocol or split.valid_in_test
    assert not default & protocol
    trained_only = pairs(recommend(folder, users=users, k=10, mask="train"))
    assert not trained_only & {(int(u), int(i)) for u, i in split.train}
    if not split.valid_in_test:  # the train-only ranking recommends validation items the default hides
        assert trained_only & valid_only
    paper = pairs(recommend(folder, users=users, k=10, mask="paper"))
    assert not paper & {(int(u), int(i)) for u, i in split.test_mask("paper")}
    with pytest.raises(ValueError, match="unknown mask"):
        recommend(folder, users=users, k=3, mask="valid")


def test_best_weights_are_those_of_the_best_epoch(trial) -> None:
    folder, trained = trial
    best = load_trainer(folder, weights="best")
    last = load_trainer(folder, weights="last")
    state = torch.load(find_checkpoint(folder), weights_only=True)
    for name, tensor in best.method.state_dict().items():
        assert torch.equal(tensor, state["best_state"][name])
    for name, tensor in last.method.state_dict().items():
        assert torch.equal(tensor, state["method"][name])


def test_cli(trial, tmp_path, capsys) -> None:
    folder, trained = trial
    out = tmp_path / "recs.csv"
    assert recommend_main([str(folder), "--k", "3", "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert frame["user"].nunique() == len(np.unique(trained.split.train[:, 0])) and len(frame) == 3 * frame["user"].nunique()
    assert recommend_main([str(folder), "--users", "999"]) == 2
    assert "outside 0..59" in capsys.readouterr().err
    assert recommend_main([str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert recommend_main([str(folder), "--k", "2", "--mask", "paper", "--out", str(out)]) == 0
    capsys.readouterr()
    for argv, expected in ((["--k", "0"], "argument --k: must be >= 1"),
                           (["--k", "abc"], "argument --k: expected an integer, got 'abc'"),
                           (["--mask", "valid"], "invalid choice: 'valid'")):
        with pytest.raises(SystemExit):
            recommend_main([str(folder), *argv])
        err = capsys.readouterr().err
        assert expected in err and "_positive_int" not in err and "positive_int" not in err
