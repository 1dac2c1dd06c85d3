"""Ray Tune trainable for image trials (spec ``task: image``); see :mod:`trainables.trial`."""
from __future__ import annotations

from typing import Any

from trainables.trial import run_trial


def image_trainable(config: dict[str, Any]) -> None:
    """Function trainable: one image-classification trial built from the spec ``config``."""
    run_trial(config, task="image")
