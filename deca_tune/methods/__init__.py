"""Methods: what a training loop optimises (losses over its models), one module per method;
recommendation methods here, image methods in ``image/``. Registries in
:mod:`deca_tune.methods.registry`."""
from deca_tune.methods.registry import IMAGE_METHODS, REC_METHODS

__all__ = ["IMAGE_METHODS", "REC_METHODS"]
