"""Ray Tune trainable for recommendation trials (spec ``task: rec``); see :mod:`trainables.trial`."""
from __future__ import annotations

from typing import Any

from trainables.trial import run_trial


def rec_trainable(config: dict[str, Any]) -> None:
    """Function trainable: one recommendation trial built from the spec ``config``."""
    run_trial(config, task="rec")
