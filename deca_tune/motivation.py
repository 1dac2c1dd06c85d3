"""``python -m deca_tune.motivation``: the motivation study of the paper (section 3, Fig. 1 and 2):
do two models disagree more on noisy than on clean training examples?

Examples::

    python -m deca_tune.motivation --task rec --dataset ml-100k --backbones mf gmf neumf lightgcn
    python -m deca_tune.motivation --task image --dataset mnist --backbones convnet mlp --max-epochs 3


Recommendation (Fig. 1): every backbone is trained with the ``normal`` method on the training
positives of a data set whose clean/noisy truth is known (ML-100K: rating 4-5 clean, 1-2 noisy,
rating 3 dropped from training and from the measure, as in the paper; ``synthetic``: the planted
truth). The difference of two models on a pair (u, i) is
``|I(sigmoid(y_ui) >= 0.5) - I(sigmoid(y'_ui) >= 0.5)|``, averaged over clean and over noisy
training positives.

Images (Fig. 2): the backbones are trained on a training set with injected label noise (e.g.
MNIST, 40% symmetric), all on the *same* noisy labels (``data_seed`` fixed); the difference is
``I(M1(x) != M2(x))`` of the predicted classes, averaged over the training images whose label
was kept (clean) and over those whose label was changed (noisy). The paper says it measures on
"the test set", but test labels are not corrupted, so the clean/noisy split only exists on the
training set; we measure there.

Pairs: (a) different backbones with the same seed, (b) one backbone with two seeds. Models are
trained by the project's trainers (``build_trainer`` / ``RecTrainer``), never by a copy of a loop;
their ``fit`` keeps the best epoch on the noisy validation split, or the last epoch with the spec
key ``restore_best: false`` (``--set restore_best=false``).
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from analysis.figures import motivation_bars
from analysis.tables import backbone_name, dataset_name
from deca_tune.options import key_value, nested

KIND_MODELS = "different models"
KIND_SEEDS = "different seeds"


@dataclass
class MotivationResult:
    """Per pair: mean difference on clean and noisy examples; per model: its test metric."""

    task: str
    dataset: str
    pairs: pd.DataFrame
    models: pd.DataFrame
    n_clean: int
    n_noisy: int
    files: list[Path] = field(default_factory=list)


# ------------------------------------------------------------------------------ recommendation
def rec_motivation_split(split: Any) -> tuple[Any, np.ndarray]:
    """(split for training, clean flag per training row): rows of unknown truth (rating 3) are
    dropped from the training positives, as the paper discards them."""
    from deca_tune.metrics.noise_detection import clean_labels

    labels = clean_labels(split)
    keep = labels >= 0
    changes: dict[str, Any] = {"train": split.train[keep]}
    for name in ("train_rating", "train_noisy"):
        value = getattr(split, name)
        if value is not None:
            changes[name] = np.asarray(value)[keep]
    return dataclasses.replace(split, **changes), labels[keep] == 1


@torch.no_grad()
def rec_positive_predictions(trainer: Any, pairs: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """I(sigmoid(f(u, i)) >= 0.5) of the trainer's target model for every (u, i) row."""
    f = trainer.method.f
    was = f.training
    f.eval()
    device = next(f.parameters()).device
    users = torch.as_tensor(pairs[:, 0], device=device)
    items = torch.as_tensor(pairs[:, 1], device=device)
    out = [(f(users[lo:lo + batch_size], items[lo:lo + batch_size]) >= 0).cpu()
           for lo in range(0, len(pairs), batch_size)]
    f.train(was)
    return torch.cat(out).numpy().astype(np.int8) if out else np.zeros(0, np.int8)


def _train_rec(spec: dict[str, Any], split: Any) -> Any:
    from deca_tune.training.rec_trainer import RecTrainer

    trainer = RecTrainer(spec, split=split)
    trainer.used = trainer.fit()  # metrics of the weights in use (best epoch, or last: restore_best)
    return trainer


# ------------------------------------------------------------------------------ images
@torch.no_grad()
def image_train_predictions(trainer: Any) -> np.ndarray:
    """Predicted class of the trainer's target model for every training image."""
    method, split = trainer.method, trainer.split
    batch = int(trainer.spec.get("eval_batch_size", 1000))
    pred = method.map_batches(lambda x, _y: method.predict(x).argmax(1), split.train_x,
                              split.train_y_noisy, batch_size=batch)
    return pred.numpy()


def _train_image(spec: dict[str, Any]) -> Any:
    from deca_tune.training import build_trainer

    trainer = build_trainer(spec)
    trainer.used = trainer.fit()  # metrics of the weights in use (best epoch, or last: restore_best)
    return trainer


# ------------------------------------------------------------------------------ the study
def _pairs(backbones: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, tuple, tuple]]:
    s0 = seeds[0]
    out = [(KIND_MODELS, (a, s0), (b, s0)) for a, b in itertools.combinations(backbones, 2)]
    if len(seeds) > 1:
        out += [(KIND_SEEDS, (b, s0), (b, seeds[1])) for b in backbones]
    return out


def run_motivation(task: str, dataset: str, backbones: Sequence[str], seeds: Sequence[int] = (0, 1),
                   max_epochs: int = 20, data_root: str | None = None,
                   spec_overrides: dict[str, Any] | None = None, split: Any = None,
                   log: Any = print) -> MotivationResult:
    """Train every (backbone, seed) once with ``normal`` and measure the pairs' differences."""
    if task not in ("rec", "image"):
        raise ValueError(f"unknown task {task!r}; choose one of: image, rec")
    if len(backbones) < 2 and len(seeds) < 2:
        raise ValueError("need two backbones or two seeds to form a pair")
    needed = sorted({(b, s) for _, a, c in _pairs(backbones, seeds) for b, s in (a, c)},
                    key=lambda t: (list(backbones).index(t[0]), t[1]))
    overrides = dict(spec_overrides or {})
    preds: dict[tuple[str, int], np.ndarray] = {}
    models = []
    if task == "rec":
        if split is None:
            from deca_tune.data import load_split

            split = load_split("rec", {"dataset": dataset, "data_root": data_root,
                                       "dataset_options": overrides.pop("dataset_options", {})})
        train_split, clean = rec_motivation_split(split)
        for backbone, seed in needed:
            spec = {"task": "rec", "dataset": dataset, "backbone": backbone, "method": "normal",
                    "seed": seed, "max_epochs": max_epochs, "data_root": data_root, "device": "cpu",
                    **overrides}
            start = time.perf_counter()
            trainer = _train_rec(spec, train_split)
            preds[(backbone, seed)] = rec_positive_predictions(trainer, train_split.train)
            models.append({"backbone": backbone, "seed": seed, "epochs": trainer.epoch,
                           "used_epoch": trainer.used.get("epoch"),
                           **{k: trainer.used.get(k) for k in ("test_clean/recall@20", "test_clean/ndcg@20")},
                           "predicted_positive": float(preds[(backbone, seed)].mean()),
                           "seconds": time.perf_counter() - start})
            log(f"  trained {backbone} seed {seed}: {models[-1]}")
    else:
        clean = None
        for backbone, seed in needed:
            spec = {"task": "image", "dataset": dataset, "backbone": backbone, "method": "normal",
                    "seed": seed, "data_seed": 0, "max_epochs": max_epochs, "data_root": data_root,
                    "device": "cpu", **overrides}
            start = time.perf_counter()
            trainer = _train_image(spec)
            mask = trainer.split.noisy_mask.numpy().astype(bool)
            if clean is None:
                clean = ~mask
            elif not np.array_equal(clean, ~mask):
                raise RuntimeError("the models saw different noisy labels; data_seed must be fixed")
            preds[(backbone, seed)] = image_train_predictions(trainer)
            noisy_y = trainer.split.train_y_noisy.numpy()
            models.append({"backbone": backbone, "seed": seed, "epochs": trainer.epoch,
                           "used_epoch": trainer.used.get("epoch"),
                           "test_clean/accuracy": trainer.used.get("test_clean/accuracy"),
                           "train_fit_noisy_labels": float((preds[(backbone, seed)] == noisy_y)[mask].mean())
                           if mask.any() else float("nan"),
                           "seconds": time.perf_counter() - start})
            log(f"  trained {backbone} seed {seed}: {models[-1]}")
    assert clean is not None
    rows = []
    for kind, a, b in _pairs(backbones, seeds):
        diff = (preds[a] != preds[b]).astype(np.float64)
        label = (f"{backbone_name(a[0])}-{backbone_name(b[0])}" if kind == KIND_MODELS
                 else f"{backbone_name(a[0])} (seeds {a[1]}, {b[1]})")
        rows.append({"kind": kind, "pair": label, "model_a": f"{a[0]}/seed{a[1]}",
                     "model_b": f"{b[0]}/seed{b[1]}",
                     "clean": float(diff[clean].mean()) if clean.any() else float("nan"),
                     "noisy": float(diff[~clean].mean()) if (~clean).any() else float("nan"),
                     "n_clean": int(clean.sum()), "n_noisy": int((~clean).sum())})
    pairs = pd.DataFrame(rows)
    pairs["noisy_minus_clean"] = pairs["noisy"] - pairs["clean"]
    return MotivationResult(task, dataset, pairs, pd.DataFrame(models), int(clean.sum()),
                            int((~clean).sum()))


def write_motivation(result: MotivationResult, out_dir: str | Path) -> list[Path]:
    """``motivation_<dataset>_pairs.csv``, ``..._models.csv`` and the bar chart (Fig. 1/2)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"motivation_{result.dataset}"
    files = [out / f"{stem}_pairs.csv", out / f"{stem}_models.csv"]
    result.pairs.to_csv(files[0], index=False)
    result.models.to_csv(files[1], index=False)
    what = "sigmoid >= 0.5 indicator" if result.task == "rec" else "predicted class"
    fig = "Fig. 1" if result.task == "rec" else "Fig. 2"
    files.append(motivation_bars(result.pairs, out / f"{stem}.png",
                                 f"{fig}: {dataset_name(result.dataset)}, mean difference of the {what}\n"
                                 f"on clean ({result.n_clean:,}) vs noisy ({result.n_noisy:,}) "
                                 "training examples"))
    result.files = files
    return files


def format_pairs(result: MotivationResult) -> str:
    """A Markdown table of the pairs."""
    lines = [f"{dataset_name(result.dataset)} ({result.task}; clean {result.n_clean:,}, "
             f"noisy {result.n_noisy:,} training examples)", "",
             "| kind | pair | clean | noisy | noisy - clean |", "|---|---|---|---|---|"]
    for r in result.pairs.to_dict("records"):
        lines.append(f"| {r['kind']} | {r['pair']} | {r['clean']:.4f} | {r['noisy']:.4f} | "
                     f"{r['noisy_minus_clean']:+.4f} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ the command
DEFAULTS = {"rec": ("ml-100k", ["mf", "gmf", "neumf", "lightgcn"], 20),
            "image": ("mnist", ["convnet", "mlp"], 3)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deca_tune.motivation", description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=["rec", "image"], default="rec")
    parser.add_argument("--dataset", help="default: ml-100k (rec), mnist (image)")
    parser.add_argument("--backbones", nargs="+", help="default: mf gmf neumf lightgcn (rec), convnet mlp (image)")
    parser.add_argument("--seeds", nargs=2, type=int, default=[0, 1], metavar="SEED",
                        help="the two seeds of the same-backbone pairs (the first also for the "
                             "different-backbone pairs)")
    parser.add_argument("--max-epochs", type=int, help="default: 20 (rec), 3 (image)")
    parser.add_argument("--noise-rate", type=float, default=0.4, help="image: injected noise (default 0.4)")
    parser.add_argument("--data-root")
    parser.add_argument("--set", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                        help="extra spec keys (YAML values; dotted keys for nested entries), e.g. "
                             "--set lr=0.001 --set train_size=20000")
    parser.add_argument("--out", default="results/motivation", help="output folder")
    args = parser.parse_args(argv)
    dataset, backbones, epochs = DEFAULTS[args.task]
    overrides = nested(args.set)
    if args.task == "image":
        overrides.setdefault("noise_rate", args.noise_rate)
    from deca_tune.registry import UnknownNameError

    try:
        result = run_motivation(args.task, args.dataset or dataset, args.backbones or backbones,
                                seeds=args.seeds, max_epochs=args.max_epochs or epochs,
                                data_root=args.data_root, spec_overrides=overrides)
    except (UnknownNameError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = write_motivation(result, Path(args.out))
    print(format_pairs(result))
    print(result.models.to_string(index=False))
    print("written:", *files, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
