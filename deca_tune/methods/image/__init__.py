"""Image-classification methods (``IMAGE_METHODS``): normal, itlm, mwnet, deca_p.

Each module registers itself; the interface is :class:`deca_tune.methods.image.base.ImageMethod`.
"""
from deca_tune.methods.image import deca_p, itlm, mwnet, normal  # noqa: F401  (register)
