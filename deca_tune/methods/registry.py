"""Method registries of both task families (see :mod:`deca_tune.registry`).

- ``REC_METHODS``: name -> a :class:`deca_tune.methods.base.RecMethod` subclass;
- ``IMAGE_METHODS``: name -> a :class:`deca_tune.methods.image.base.ImageMethod` subclass.

A method is an ``nn.Module`` built as ``cls(spec, split)``; its class attribute ``defaults``
lists the spec keys (hyperparameters) it reads. A new method: one module registering itself
with ``@REC_METHODS.register("name")`` (or ``IMAGE_METHODS``) plus its module name below.
"""
from __future__ import annotations

from deca_tune.registry import Registry

REC_METHODS: Registry = Registry("recommendation method", modules=(
    "deca_tune.methods.rec.normal",
    "deca_tune.methods.rec.deca",  # deca, deca-dp, deca-dn
    "deca_tune.methods.rec.deca_p",  # deca_p, deca_p-dp, deca_p-dn
    "deca_tune.methods.rec.tce",
    "deca_tune.methods.rec.rce",
    "deca_tune.methods.rec.wbpr",
    "deca_tune.methods.rec.ensemble",
))

IMAGE_METHODS: Registry = Registry("image method", modules=(
    "deca_tune.methods.image.normal",
    "deca_tune.methods.image.itlm",
    "deca_tune.methods.image.mwnet",
    "deca_tune.methods.image.deca_p",
))
