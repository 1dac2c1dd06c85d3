"""Recommendation backbones (``REC_BACKBONES`` in :mod:`deca_tune.models.registry`).

Every backbone maps ``(users, items)`` to logits (``forward``) and scores all items for a batch
of users (``score_all``), the two things training and full-ranking evaluation need.
"""
from __future__ import annotations

from typing import Any

from deca_tune.models.registry import REC_BACKBONES


def build_backbone(name: str, split: Any, **kwargs: Any) -> Any:
    """Instantiate backbone ``name`` for ``split`` (sizes from the paper unless overridden)."""
    return REC_BACKBONES.get(name).from_split(split, **kwargs)
