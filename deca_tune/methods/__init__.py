"""Method registries. A new method is one module plus one import line below."""
from deca_tune.registry import Registry

REC_METHODS: Registry = Registry("recommendation method")
IMAGE_METHODS: Registry = Registry("image method")

from deca_tune.methods import normal  # noqa: E402,F401  (registers itself)
