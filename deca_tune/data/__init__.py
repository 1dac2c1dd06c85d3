"""Data sets of both task families: registries in :mod:`deca_tune.data.registry`, the loader
contract there too, and the one cached way in, :func:`load_split` (:mod:`deca_tune.data.loading`).

Recommendation data sets are modules here (``movielens``, ``deca_splits``, ``marketbias``,
``adressa``, ``custom_csv``, ``synthetic``) on the split object of ``interactions.py``;
image data sets are in ``image/`` (``raw.py`` loaders of the published sets, ``folder.py``
your own files: ``image-folder`` and ``image-csv``, ``decode.py``, ``labels.py``, ``split.py``
the noisy split, ``noise.py``, ``transforms.py``). ``python -m deca_tune.data describe NAME`` prints a split's
statistics.
"""
from deca_tune.data.loading import UnknownOptionError, clear_cache, load_dataset, load_split
from deca_tune.data.registry import IMAGE_DATASETS, REC_DATASETS

__all__ = ["IMAGE_DATASETS", "REC_DATASETS", "UnknownOptionError", "clear_cache", "load_dataset",
           "load_split"]
