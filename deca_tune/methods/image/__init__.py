"""Image-classification methods (``IMAGE_METHODS``): normal, itlm, mwnet, deca_p; the interface
is :class:`deca_tune.methods.image.base.ImageMethod`."""
