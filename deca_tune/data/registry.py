"""Data-set registries of both task families (see :mod:`deca_tune.registry`).

One loader contract for every data set: ``loader(root: Path, download: bool = True,
**options)`` where ``root`` is the data root (:func:`deca_tune.paths.data_root`) and ``options``
are the data set's own settings (the spec's ``dataset_options``; ``verify`` and ``cache_dir``
where the loader takes them). It returns the family's data:

- recommendation (``REC_DATASETS``): a :class:`deca_tune.data.interactions.RecSplit`, ready to
  train on;
- image (``IMAGE_DATASETS``): a
  :class:`deca_tune.data.image.raw.RawImages` (the published train/test sets), which
  :func:`deca_tune.data.image.split.split_from_spec` splits and corrupts as the spec says.

Use :func:`deca_tune.data.load_split` to get a trial's split (cached per process). A new data set:
one module with ``@REC_DATASETS.register("name")`` (or ``IMAGE_DATASETS``) on its loader, plus
its module name in the list below.
"""
from __future__ import annotations

from deca_tune.registry import Registry

REC_DATASETS: Registry = Registry("recommendation data set", modules=(
    "deca_tune.data.movielens",
    "deca_tune.data.deca_splits",
    "deca_tune.data.marketbias",
    "deca_tune.data.adressa",
    "deca_tune.data.custom_csv",
    "deca_tune.data.synthetic",
))

IMAGE_DATASETS: Registry = Registry("image data set", modules=(
    "deca_tune.data.image.raw",
    "deca_tune.data.image.folder",
))
