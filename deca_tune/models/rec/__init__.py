"""Recommendation backbones. A new backbone is one module plus one import line below.

Every backbone maps ``(users, items)`` to logits (``forward``) and scores all items for a batch
of users (``score_all``), the two things training and full-ranking evaluation need.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from deca_tune.data.interactions import RecSplit
from deca_tune.registry import Registry

REC_BACKBONES: Registry = Registry("recommendation backbone")


def build_backbone(name: str, split: RecSplit, **kwargs: Any) -> nn.Module:
    """Instantiate backbone ``name`` for ``split`` (sizes from the paper unless overridden)."""
    return REC_BACKBONES.get(name).from_split(split, **kwargs)


from deca_tune.models.rec import cdae, gmf, lightgcn, mf, neumf  # noqa: E402,F401
