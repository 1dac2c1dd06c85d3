"""Method registries. A new method is one module plus one import line below."""
from deca_tune.registry import Registry

REC_METHODS: Registry = Registry("recommendation method")
IMAGE_METHODS: Registry = Registry("image method")

from deca_tune.methods import normal  # noqa: E402,F401  (registers itself)
from deca_tune.methods import deca  # noqa: E402,F401  (deca, deca-dp, deca-dn)
from deca_tune.methods import deca_p  # noqa: E402,F401  (deca_p, deca_p-dp, deca_p-dn)
from deca_tune.methods import tce  # noqa: E402,F401
from deca_tune.methods import wbpr  # noqa: E402,F401
from deca_tune.methods import ensemble  # noqa: E402,F401
from deca_tune.methods import image  # noqa: E402,F401  (image methods: IMAGE_METHODS)
