"""The kit a lent GPU machine needs for ``python -m deca_tune.bench gpu``: ``bench gpu --kit DIR``.

The lent machine (the device tool's KINDS.md) has Python 3.12, torch, torchvision, numpy, pandas,
pyarrow, matplotlib, tensorboard, requests, aiohttp and friends, but not Ray, Optuna or what they
need, and it cannot download anything. What travels with a call is the working tree plus carried
paths, at most 64 MiB. So, here, with the package registry at hand:

1. download the cp312 manylinux wheels of :data:`MISSING_THERE` (versions from ``constraints.txt``,
   so the GPU run uses what CI tests);
2. install them with ``pip install --target`` into a staging folder (no dependency resolution:
   the list is complete, :func:`check_kit` proves it on a stripped environment);
3. strip what running Tune from Python does not use (:data:`STRIP`: Ray's Java workers, the
   dashboard's web client and source maps, RLlib, Serve, LLM; debug symbols of Ray's binaries);
4. pack the folder as ``DIR/site.tar.xz`` (xz packs the binaries about 40% tighter than a
   wheel's deflate) and copy the Fashion-MNIST files of the data root to ``DIR/data``;
5. check that the kit plus the working tree stay under :data:`LIMIT_MIB`, and print the one
   ``run`` command line that unpacks the kit there, puts the checkout on ``PYTHONPATH`` (no
   install) and runs the three phases of ``bench gpu`` with their JSON under ``$OUT``.

``--check-kit`` (``--python-version 3.11`` for this machine) installs a kit the same way into a
fresh folder and runs the real search CLI on the CPU from an environment that lacks the kit's
packages (a virtual environment whose site-packages hides them), which is what the GPU machine
looks like.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Sequence

#: packages (and what they need) that the GPU machine lacks, as PyPI names; the versions come from
#: constraints.txt
MISSING_THERE = (
    "ray", "optuna", "sqlalchemy", "alembic", "mako", "colorlog", "tensorboardx",
    "jsonschema", "jsonschema-specifications", "referencing", "rpds-py",
    "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
)
#: paths (relative to the install folder) that running Tune from Python never reads
STRIP = (
    "ray/jars",                          # Java workers (32 MB compressed)
    "ray/dashboard/client/build",        # the dashboard's web client (the search starts no dashboard)
    "ray/rllib", "ray/serve", "ray/llm",  # libraries beside Tune
    "bin",                               # console scripts written for this machine's Python
)
#: binaries whose symbol tables go (``strip``; the dynamic symbols stay)
STRIP_SYMBOLS = ("ray/core/src/ray/gcs/gcs_server", "ray/core/src/ray/raylet/raylet", "ray/_raylet.so")
#: kit + working tree must stay under this (a call carries at most 64 MiB)
LIMIT_MIB = 60.0
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
#: data files of the fmnist_40 phase
FMNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
ROOT = Path(__file__).resolve().parents[2]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions(constraints: Path = ROOT / "constraints.txt") -> dict[str, str]:
    """``{normalised name: version}`` of the constraints file."""
    out = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[_norm(name.split("[")[0])] = version.strip()
    return out


def requirements(python_version: str) -> list[str]:
    pins = pinned_versions()
    missing = [n for n in MISSING_THERE if _norm(n) not in pins]
    if missing:
        raise SystemExit(f"constraints.txt pins no version of {', '.join(missing)}; the kit takes its "
                         "versions from there")
    return [f"{n}=={pins[_norm(n)]}" for n in MISSING_THERE]


def _run(cmd: Sequence[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), text=True, capture_output=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return proc


def install_site(target: Path, python_version: str, wheels: Path) -> None:
    """Download the wheels for ``python_version`` and install them, unresolved, into ``target``."""
    abi = "cp" + python_version.replace(".", "")
    platform = [a for p in PLATFORMS for a in ("--platform", p)]
    common = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
              "--abi", abi, "--abi", "abi3", "--abi", "none", *platform, "--no-deps"]
    wheels.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels), *common,
          *requirements(python_version)])
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-compile", "--target", str(target),
          "--find-links", str(wheels), *common, *requirements(python_version)])


def strip_site(target: Path) -> dict[str, float]:
    """Remove :data:`STRIP` and source maps, strip symbols; returns MB removed per step."""
    removed: dict[str, float] = {}
    for rel in STRIP:
        path = target / rel
        if path.exists():
            removed[rel] = _size(path) / 1e6
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    maps = list(target.rglob("*.map"))
    removed["*.map"] = sum(p.stat().st_size for p in maps) / 1e6
    for p in maps:
        p.unlink()
    strip = shutil.which("strip")
    if strip:
        for rel in STRIP_SYMBOLS:
            path = target / rel
            if path.exists():
                before = path.stat().st_size
                _run([strip, "--strip-unneeded", str(path)])
                removed[f"symbols of {rel}"] = (before - path.stat().st_size) / 1e6
    return removed


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def working_tree_bytes(root: Path = ROOT) -> int:
    """Bytes of what a device call sends: tracked files plus untracked files git does not ignore."""
    proc = _run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    total = 0
    for rel in proc.stdout.split("\0"):
        p = root / rel
        if rel and p.is_file():
            total += p.stat().st_size
    return total


def run_command(kit_rel: str, budget_s: float) -> str:
    """The device ``run`` command line (carry ``kit_rel``)."""
    return (f"set -o pipefail; mkdir -p /tmp/site && tar -xJf {kit_rel}/site.tar.xz -C /tmp/site && "
            f"export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 && "
            f"python3 -m deca_tune.bench gpu --budget-s {budget_s:.0f} --data-root {kit_rel}/data "
            f"--out $OUT/bench-gpu.json 2>&1 | tee $OUT/bench-gpu.log")


def build_kit(kit: Path, python_version: str = "3.12", data_root: str | None = None,
              budget_s: float = 460.0) -> dict[str, object]:
    """Build the kit in ``kit`` (inside the checkout, ignored by git); returns its description."""
    t0 = time.perf_counter()
    kit = kit.resolve()
    kit.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="deca-kit-") as tmp:
        site = Path(tmp) / "site"
        install_site(site, python_version, Path(tmp) / "wheels")
        installed_mb = _size(site) / 1e6
        removed = strip_site(site)
        archive = kit / "site.tar.xz"
        with tarfile.open(archive, "w:xz", preset=9) as tar:
            for p in sorted(site.iterdir()):
                tar.add(p, arcname=p.name)
    data_note = "no Fashion-MNIST copied (none under the data root): phase fmnist_40 runs on synthetic images"
    root = data_root or os.environ.get("DECA_TUNE_DATA")
    if root and all((Path(root) / "fashion-mnist" / f).is_file() for f in FMNIST_FILES):
        dest = kit / "data" / "fashion-mnist"
        dest.mkdir(parents=True, exist_ok=True)
        for f in FMNIST_FILES:
            shutil.copy2(Path(root) / "fashion-mnist" / f, dest / f)
        data_note = f"Fashion-MNIST copied from {root}"
    kit_mib = _size(kit) / 2 ** 20
    tree_mib = working_tree_bytes() / 2 ** 20
    try:
        kit_rel = str(kit.relative_to(ROOT))
    except ValueError:
        kit_rel = str(kit)
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", kit_rel]).returncode == 0
    info: dict[str, object] = {
        "kit": str(kit), "python_version": python_version, "packages": requirements(python_version),
        "installed_mb": round(installed_mb, 1), "stripped_mb": {k: round(v, 1) for k, v in removed.items()},
        "site_archive_mib": round(archive.stat().st_size / 2 ** 20, 1), "data": data_note,
        "kit_mib": round(kit_mib, 1), "working_tree_mib": round(tree_mib, 1),
        "total_mib": round(kit_mib + tree_mib, 1), "limit_mib": LIMIT_MIB,
        "inside_checkout_and_ignored": ignored, "build_seconds": round(time.perf_counter() - t0, 1),
        "carry": [kit_rel], "command": run_command(kit_rel, budget_s),
    }
    return info


def check_kit(kit: Path, search_args: Sequence[str] = ()) -> int:
    """Unpack ``kit`` into a fresh folder; run the search CLI and ``bench gpu --tiny`` without its packages.

    The environment is a new virtual environment whose only site-packages entry is a ``.pth`` file
    pointing at a folder of links to this interpreter's packages, less those of the kit: imports
    of Ray and Optuna can only succeed through the kit, in the driver and in Ray's workers alike.
    """
    hidden = {_norm(n).replace("-", "_") for n in MISSING_THERE} | {"rpds"}
    with tempfile.TemporaryDirectory(prefix="deca-kit-check-") as tmp:
        tmp_p = Path(tmp)
        site = tmp_p / "site"
        site.mkdir()
        with tarfile.open(kit / "site.tar.xz") as tar:
            tar.extractall(site, filter="data")
        farm = tmp_p / "farm"
        farm.mkdir()
        import sysconfig

        for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
            stem = _norm(entry.name.split("-")[0].split(".")[0]).replace("-", "_")
            if stem in hidden or entry.suffix == ".pth" or stem.startswith("__editable__") \
                    or stem == "deca_tune":
                continue
            (farm / entry.name).symlink_to(entry)
        venv = tmp_p / "venv"
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        vsite = Path(_run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
        (vsite / "farm.pth").write_text(str(farm) + "\n")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = f"{site}{os.pathsep}{ROOT}"
        py = str(venv / "bin" / "python")
        probe = subprocess.run([py, "-c", "import ray, optuna, sys; print(ray.__file__, optuna.__file__)"],
                               env=env, text=True, capture_output=True)
        print(f"imports from: {probe.stdout.strip() or probe.stderr.strip()[-500:]}", flush=True)
        if probe.returncode != 0 or str(site) not in probe.stdout:
            return 1
        cmds = [[py, "-m", "deca_tune.search", "--storage-path", str(tmp_p / "results"), "--name", "kit-check",
                 *search_args],
                [py, "-m", "deca_tune.bench", "gpu", "--tiny", "--budget-s", "900",
                 "--out", str(tmp_p / "bench-gpu-tiny.json")]]
        for cmd in cmds:
            print("$ " + " ".join(cmd), flush=True)
            rc = subprocess.run(cmd, env=env).returncode
            print(f"exit status {rc}", flush=True)
            if rc != 0:
                return rc
        return 0


#: the search ``--check-kit`` runs: a small synthetic unit, two trials, one seed
CHECK_SEARCH = ("--datasets", "synthetic", "--backbones", "gmf", "--methods", "normal,deca",
                "--num-samples", "2", "--max-epochs", "2", "--seeds", "0", "--cpus-per-trial", "1")
