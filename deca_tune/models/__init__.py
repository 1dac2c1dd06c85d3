"""Models of both task families: ``rec`` (recommendation backbones) and ``image`` (image
classifiers); their registries are in :mod:`deca_tune.models.registry`."""
