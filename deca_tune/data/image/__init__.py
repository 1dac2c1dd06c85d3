"""Image data: ``raw.py`` (the published sets via torchvision), ``split.py`` (meta / validation /
training carving and injected label noise), ``noise.py`` (symmetric and pair noise),
``transforms.py`` (batch normalisation and augmentation)."""
