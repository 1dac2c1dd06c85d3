"""Where data lives: ``--data-root`` > ``$DECA_TUNE_DATA`` > ``~/.cache/deca_tune``."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "DECA_TUNE_DATA"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Resolve the data root directory (it need not exist yet)."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    return (Path.home() / ".cache" / "deca_tune").resolve()
