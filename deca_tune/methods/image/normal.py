"""``normal``: cross-entropy on the noisy labels as they are (the paper's baseline)."""
from __future__ import annotations

from deca_tune.methods.registry import IMAGE_METHODS
from deca_tune.methods.image.base import ImageMethod


@IMAGE_METHODS.register("normal")
class Normal(ImageMethod):
    """Plain cross-entropy; everything is the base class's default."""
