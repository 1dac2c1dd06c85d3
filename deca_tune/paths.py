"""Where data lives: ``--data-root`` > ``$DECA_TUNE_DATA`` > ``~/.cache/deca_tune``; and the
writable cache for derived files: ``cache_dir`` > ``$DECA_TUNE_CACHE`` > ``~/.cache/deca_tune``
(the data root may be a read-only copy, such as ``../shared/data``)."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "DECA_TUNE_DATA"
CACHE_ENV_VAR = "DECA_TUNE_CACHE"


def _first_of(explicit: str | os.PathLike | None, env_var: str) -> Path:
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser().resolve()
    return (Path.home() / ".cache" / "deca_tune").resolve()


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Resolve the data root directory (it need not exist yet)."""
    return _first_of(explicit, ENV_VAR)


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Resolve the writable cache directory (it need not exist yet)."""
    return _first_of(explicit, CACHE_ENV_VAR)
