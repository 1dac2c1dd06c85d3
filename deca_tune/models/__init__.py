"""Model packages: ``rec`` (recommendation backbones) and ``vision`` (image classifiers)."""
