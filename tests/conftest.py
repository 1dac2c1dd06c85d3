"""Shared pytest fixtures. Add new fixtures additively; keep this file small."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory) -> Path:
    """Derived files (pre-trained f', decompressed images) go to a per-session folder, never to
    the user's ``~/.cache``; Ray workers inherit the variable."""
    folder = tmp_path_factory.mktemp("deca-tune-cache")
    old = os.environ.get("DECA_TUNE_CACHE")
    os.environ["DECA_TUNE_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("DECA_TUNE_CACHE", None)
    else:
        os.environ["DECA_TUNE_CACHE"] = old


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The offline copy of the real data sets: ``$DECA_TUNE_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("DECA_TUNE_DATA")
    root = Path(env).expanduser().resolve() if env else (REPO.parent / "shared" / "data").resolve()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set $DECA_TUNE_DATA to the shared data folder)")
    return root


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session (``ray.init`` costs seconds): 2 CPUs, no GPU,
    no dashboard. ``address="local"`` never joins another cluster running on the machine."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False,
                 log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny models on one torch thread (extra threads only contend)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
