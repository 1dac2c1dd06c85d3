"""The trial spec: one flat, JSON-serialisable dict that fully describes a training run."""
from __future__ import annotations

from typing import Any

#: defaults shared by both task families; each family adds its own in ``FAMILY_DEFAULTS``
COMMON_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "data_root": None,
    "protocol": "default",  # "paper": clean validation for selection + the authors' test masking
    "device": "auto",
    "patience": 0,  # early stopping on the selection metric; 0 = off (train max_epochs)
    "restore_best": True,  # fit() restores the best epoch; False keeps the last (authors' runs)
}

FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "rec": {"dataset": "ml-100k", "backbone": "gmf", "method": "normal", "max_epochs": 20,
            "lr": 1e-3, "batch_size": 2048, "l2": 0.1, "neg_ratio": 1, "eval_batch_users": 1024},
    "image": {"dataset": "fashion-mnist", "backbone": "convnet", "method": "normal",
              "max_epochs": 20, "lr": 0.01, "batch_size": 100, "noise_rate": 0.4,
              "noise_type": "symmetric", "optimizer": "sgd", "schedule": "cosine",
              "weight_decay": 5e-4,
              # image trainer (deca_tune/training/image_trainer.py): data_seed None = seed;
              # valid_size None = the data set's (10,000); train_size None = all; augment "auto" =
              # the data set's (crop + flip for CIFAR)
              "momentum": 0.9, "data_seed": None, "valid_size": None, "meta_per_class": 100,
              "train_size": None, "augment": "auto", "eval_batch_size": 1000, "download": True,
              "verify_checksums": True, "dataset_options": {}},
}


def make_spec(task: str, **overrides: Any) -> dict[str, Any]:
    """Defaults for ``task`` with ``overrides`` applied (unknown keys are kept: method params)."""
    if task not in FAMILY_DEFAULTS:
        raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(FAMILY_DEFAULTS)}")
    spec = {"task": task, **COMMON_DEFAULTS, **FAMILY_DEFAULTS[task]}
    spec.update({k: v for k, v in overrides.items()})
    return spec
