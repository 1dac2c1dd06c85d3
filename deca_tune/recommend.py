"""``python -m deca_tune.recommend CHECKPOINT --users ... --k 20``: top-K items per user (CSV)
from any trained recommendation trial, with the items the trial's protocol masked excluded, so
results can be checked outside the framework.

CHECKPOINT: a trial folder (its latest checkpoint), a ``checkpoint_<n>`` folder or a
``trainer.pt`` file; the ``checkpoint`` column of an experiment's ``summary/seed_runs.csv``
names the one of each seed run (relative to the experiment folder). Tune numbers checkpoint
folders from 0 (``checkpoint_000009`` = after epoch 10) while ``best_epoch`` counts from 1; the
last checkpoint of a run holds ``best_state``, the weights of its best epoch, and those are used
(``--weights last`` for the last epoch's). The trainer is rebuilt from the spec saved in the
checkpoint.

``--mask`` (which items are never recommended):

- ``protocol`` (default): what the run's evaluation protocol masked when it scored the test
  sets (the trainer's ``test_mask``): training items, plus validation items when they are
  disjoint from the test set (``--protocol default``), or the authors' mask under
  ``--protocol paper``. These are the rankings behind the reported test metrics.
- ``train``: training items only.
- ``paper``: the DeCA authors' protocol mask (training plus clean validation items, all
  validation items on Modcloth), whatever the run's protocol.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from deca_tune.metrics.ranking import PairIndex, masked_top_k
from deca_tune.options import positive_int

MASKS = ("protocol", "train", "paper")


def _user_index(split, users: Sequence[str] | None) -> np.ndarray:
    """Dense user indices for the ids given (original ids when the data set keeps them)."""
    if not users or list(users) == ["all"]:
        return np.unique(split.train[:, 0])
    original = split.meta.get("original_user_ids") if isinstance(split.meta, dict) else None
    if original is not None:
        lookup = {str(u): i for i, u in enumerate(np.asarray(original))}
        unknown = [u for u in users if str(u) not in lookup]
        if unknown:
            raise ValueError(f"unknown user id(s) {', '.join(map(str, unknown[:10]))} in {split.name}")
        return np.array([lookup[str(u)] for u in users], dtype=np.int64)
    try:
        idx = np.array([int(u) for u in users], dtype=np.int64)
    except ValueError as exc:
        raise ValueError(f"user ids of {split.name} are integers 0..{split.n_users - 1}: {exc}") from None
    bad = idx[(idx < 0) | (idx >= split.n_users)]
    if len(bad):
        raise ValueError(f"user id(s) {', '.join(map(str, bad[:10]))} outside 0..{split.n_users - 1}")
    return idx


@torch.no_grad()
def top_k(trainer: Any, users: np.ndarray, k: int, mask: np.ndarray | None = None,
          batch_users: int = 1024) -> pd.DataFrame:
    """``user_index, rank, item_index, score`` of the ``k`` best items of each user, the pairs of
    ``mask`` excluded (default: the user's training items)."""
    split = trainer.split
    method = trainer.method
    method.eval()
    device = next(method.parameters()).device
    seen = PairIndex(split.train if mask is None else mask, split.n_users)
    rows = []
    for batch, vals, items in masked_top_k(method.score_all, users, seen, split.n_items, k,
                                            batch_users, device):
        kk = vals.shape[1]
        rows.append(pd.DataFrame({
            "user_index": np.repeat(batch, kk), "rank": np.tile(np.arange(1, kk + 1), len(batch)),
            "item_index": items.cpu().numpy().reshape(-1), "score": vals.cpu().numpy().reshape(-1)}))
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["user_index", "rank", "item_index", "score"])
    return out[np.isfinite(out["score"].to_numpy(float))]  # users who have seen almost everything


def item_mask(trainer: Any, mask: str = "protocol") -> np.ndarray:
    """The (user, item) pairs ``mask`` excludes (see the module docstring)."""
    split = trainer.split
    if mask == "train":
        return split.train
    if mask == "paper":
        return split.test_mask("paper")
    if mask == "protocol":
        held = getattr(trainer, "test_mask", None)
        return held if held is not None else split.test_mask(trainer.spec.get("protocol", "default"))
    raise ValueError(f"unknown mask {mask!r}; choose one of: {', '.join(MASKS)}")


def recommend(checkpoint: str | Path, users: Sequence[str] | None = None, k: int = 20,
              data_root: str | None = None, weights: str = "best", mask: str = "protocol") -> pd.DataFrame:
    """The top-``k`` table of a checkpoint, with original ids where the data set keeps them."""
    from deca_tune.training.checkpoints import load_trainer

    trainer = load_trainer(checkpoint, data_root=data_root, weights=weights)
    if trainer.spec.get("task", "rec") != "rec":
        raise ValueError(f"{checkpoint}: a {trainer.spec.get('task')} trial; recommendations need "
                         "a recommendation (task rec) trial")
    split = trainer.split
    frame = top_k(trainer, _user_index(split, users), k, mask=item_mask(trainer, mask))
    meta = split.meta if isinstance(split.meta, dict) else {}
    uid, iid = meta.get("original_user_ids"), meta.get("original_item_ids")
    frame["user"] = np.asarray(uid)[frame["user_index"]] if uid is not None else frame["user_index"]
    frame["item"] = np.asarray(iid)[frame["item_index"]] if iid is not None else frame["item_index"]
    return frame[["user", "rank", "item", "score", "user_index", "item_index"]].reset_index(drop=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deca_tune.recommend",
                                     description="Top-K items per user from a trained trial (CSV).")
    parser.add_argument("checkpoint", help="trial folder, checkpoint_<n> folder or trainer.pt (the "
                                           "'checkpoint' column of summary/seed_runs.csv)")
    parser.add_argument("--users", nargs="*", default=["all"],
                        help="user ids (the data set's original ids when it keeps them), or 'all' "
                             "(default: every user with training interactions)")
    parser.add_argument("--k", type=positive_int, default=20, help="items per user")
    parser.add_argument("--out", help="CSV file to write (default: stdout)")
    parser.add_argument("--data-root", help="data root if it moved since training")
    parser.add_argument("--weights", choices=["best", "last"], default="best",
                        help="best epoch on validation (default; its weights are stored in the last "
                             "checkpoint as best_state) or the checkpoint's last epoch")
    parser.add_argument("--mask", choices=MASKS, default="protocol",
                        help="items never recommended: protocol = what the run's protocol masked "
                             "when scoring the test sets (reproduces the reported metrics); train = "
                             "training items only; paper = the DeCA authors' protocol mask")
    args = parser.parse_args(argv)
    try:
        frame = recommend(args.checkpoint, args.users, args.k, args.data_root, args.weights, args.mask)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)
        print(f"{frame['user_index'].nunique()} users x top-{args.k} -> {args.out}", file=sys.stderr)
    else:
        frame.to_csv(sys.stdout, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
