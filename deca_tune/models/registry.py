"""Backbone registries of both task families (see :mod:`deca_tune.registry`).

- ``REC_BACKBONES``: name -> a :class:`deca_tune.models.rec.base.RecBackbone` subclass, built
  with ``cls.from_split(split, **kwargs)``; scores ``(users, items)`` pairs and all items.
- ``IMAGE_BACKBONES``: name -> ``builder(n_classes, in_channels, image_size) ->
  ImageBackbone`` (an embedding plus a linear classifier).

A new backbone: one module registering itself with ``@REC_BACKBONES.register("name")`` (or
``IMAGE_BACKBONES``) plus its module name in the list below.
"""
from __future__ import annotations

from deca_tune.registry import Registry

REC_BACKBONES: Registry = Registry("recommendation backbone", modules=(
    "deca_tune.models.rec.mf",
    "deca_tune.models.rec.gmf",
    "deca_tune.models.rec.neumf",
    "deca_tune.models.rec.cdae",
    "deca_tune.models.rec.lightgcn",
))

IMAGE_BACKBONES: Registry = Registry("image backbone", modules=(
    "deca_tune.models.image.resnet",
    "deca_tune.models.image.convnet",
    "deca_tune.models.image.mlp",
    "deca_tune.models.image.inception",
))
