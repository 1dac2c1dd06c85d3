"""Training loops, one per task family, behind one entry point: :func:`build_trainer`."""
from __future__ import annotations

from typing import Any


def build_trainer(spec: dict[str, Any]):
    """The trainer for ``spec["task"]`` ("rec" or "image"); see docs/architecture.md."""
    task = spec.get("task", "rec")
    if task == "rec":
        from deca_tune.training.rec_trainer import RecTrainer

        return RecTrainer(spec)
    if task == "image":
        from deca_tune.training.image_trainer import ImageTrainer

        return ImageTrainer(spec)
    raise ValueError(f"unknown task {task!r}; choose one of: image, rec")
