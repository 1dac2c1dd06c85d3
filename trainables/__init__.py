"""Thin Ray Tune adapters around the trainers: one function trainable per task family."""
from __future__ import annotations

from typing import Any, Callable

from trainables.image import image_trainable
from trainables.rec import rec_trainable

TRAINABLES: dict[str, Callable[[dict[str, Any]], None]] = {
    "rec": rec_trainable,
    "image": image_trainable,
}

__all__ = ["TRAINABLES", "image_trainable", "rec_trainable"]
