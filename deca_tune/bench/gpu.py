"""A prepared GPU run, one call of at most 8 minutes: ``python -m deca_tune.bench gpu [--tiny]``.

Three phases, each under the remaining time budget (``--budget-s``, default 460 s of the 8
minutes; a phase that cannot fit is skipped with the reason), every figure written to one JSON
file (``--out``, rewritten after each phase so a killed run keeps what finished):

1. ``epoch_time``: ResNet-32 on CIFAR-shaped input (3x32x32, crop + flip augmentation, 50,000
   synthetic training images), one trainer with the whole GPU: seconds per epoch (the first
   epoch includes cuDNN's autotuning, the second is the steady one), images per second, peak
   GPU memory.
2. ``search_throughput``: the real search CLI (``python -m deca_tune.search``) twice on the same
   CIFAR-shaped unit: four trials at once with ``--gpus-per-trial 0.25``, then one trial alone
   with the whole GPU; training images per second of the search phase (from the experiment's
   manifest) and the ratio.
3. ``fmnist_40``: Fashion-MNIST, 40% symmetric noise, ResNet-32, ``normal`` and ``deca_p`` for
   as many epochs as the remaining time allows (planned from phase 1's epoch time). The normal
   run uses seed 1000 on the split of seed 0, which is exactly DeCA(p)'s prior f' for seed 0,
   so DeCA(p) takes it from the f' cache instead of training it again. Per-epoch clean test
   accuracy of both, the last and the noisy-validation-selected epoch.

``--tiny`` runs the same code on a CPU (tiny sizes, 8x8 images, Fashion-MNIST replaced by the
synthetic set; ~1 minute on an idle 2-core machine, most of it the two searches' Ray start-up):
it checks the script, not the numbers. Without a GPU and without
``--tiny`` the script stops with a clear message (``--allow-cpu`` overrides).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

#: seconds kept back from the budget for writing the JSON and shutting down
SAFETY_S = 15.0
#: sizes of a real (GPU) run and of ``--tiny``
SIZES: dict[str, dict[str, Any]] = {
    "gpu": {"epoch_images": 50_000, "epoch_test": 10_000, "image_size": 32, "epoch_epochs": 2,
            "search_images": 10_000, "search_test": 1_000, "search_epochs": 3, "search_timeout": 170,
            "fmnist_dataset": "fashion-mnist", "fmnist_train": None, "fmnist_valid": None,
            "fmnist_max_epochs": 120, "eval_batch_size": 1000, "cpus_per_trial": 1.0,
            "synthetic_options": {"n_train": 60_000, "n_test": 10_000, "image_size": 28}},
    "tiny": {"epoch_images": 100, "epoch_test": 20, "image_size": 8, "epoch_epochs": 2,
             "search_images": 40, "search_test": 10, "search_epochs": 1, "search_timeout": 240,
             "fmnist_dataset": "synthetic-images", "fmnist_train": 100, "fmnist_valid": 30,
             "fmnist_max_epochs": 2, "eval_batch_size": 250, "cpus_per_trial": 0.5,
             "synthetic_options": {"n_train": 200, "n_test": 20, "image_size": 8}},
}


class Budget:
    """Wall-clock budget of the whole call."""

    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.seconds = float(seconds)

    def left(self) -> float:
        return self.seconds - SAFETY_S - (time.monotonic() - self.start)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def device_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
                            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update({"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2 ** 30, 1),
                     "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                     "gpu_count": torch.cuda.device_count()})
    return info


def _cifar_options(n_train: int, n_test: int, size: int, valid: int) -> dict[str, Any]:
    return {"n_train": n_train + valid, "n_test": n_test, "channels": 3, "image_size": size, "seed": 0}


def _trainer_spec(sizes: dict[str, Any], device: str, **kw: Any) -> dict[str, Any]:
    spec = {"task": "image", "backbone": "resnet32", "method": "normal", "seed": 0, "lr": 0.1,
            "batch_size": 100, "device": device, "eval_batch_size": sizes["eval_batch_size"],
            "pretrain_cache": "off"}
    spec.update(kw)
    return spec


# --------------------------------------------------------------------------- phase 1
def phase_epoch_time(sizes: dict[str, Any], device: str, budget: Budget) -> dict[str, Any]:
    import torch

    from deca_tune.training.image_trainer import ImageTrainer

    valid = max(10, sizes["epoch_images"] // 50)
    spec = _trainer_spec(sizes, device, dataset="synthetic-images", augment=True, valid_size=valid,
                         meta_per_class=0, noise_rate=0.0, max_epochs=sizes["epoch_epochs"],
                         dataset_options=_cifar_options(sizes["epoch_images"], sizes["epoch_test"],
                                                        sizes["image_size"], valid))
    t0 = time.perf_counter()
    trainer = ImageTrainer(spec)
    setup = time.perf_counter() - t0
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    epochs = []
    while not trainer.finished:
        if epochs and budget.left() < 1.5 * epochs[-1]["epoch_seconds"]:
            break
        m = trainer.train_epoch()
        epochs.append({k: m[k] for k in ("epoch", "train_seconds", "epoch_seconds", "train_rows")})
    steady = epochs[-1]
    out = {"backbone": "resnet32", "input": f"3x{sizes['image_size']}x{sizes['image_size']}",
           "train_images": steady["train_rows"], "batch_size": 100, "augment": True,
           "device": str(trainer.device), "memory_format": "channels_last", "setup_seconds": round(setup, 2),
           "epochs": epochs, "epoch_seconds": steady["epoch_seconds"], "train_seconds": steady["train_seconds"],
           "train_images_per_second": steady["train_rows"] / steady["train_seconds"],
           "ms_per_train_image": 1000 * steady["train_seconds"] / steady["train_rows"]}
    if trainer.device.type == "cuda":
        out["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    return out


# --------------------------------------------------------------------------- phase 2
def search_command(sizes: dict[str, Any], storage: Path, name: str, trials: int, gpus: float,
                   cpus: float, concurrent: int) -> list[str]:
    valid = max(10, sizes["search_images"] // 10)
    options = _cifar_options(sizes["search_images"], sizes["search_test"], sizes["image_size"], valid)
    return [sys.executable, "-m", "deca_tune.search", "--datasets", "synthetic-images",
            "--backbones", "resnet32", "--methods", "normal", "--num-samples", str(trials),
            "--scheduler", "fifo", "--max-epochs", str(sizes["search_epochs"]), "--seeds", "0",
            "--gpus-per-trial", str(gpus), "--cpus-per-trial", str(cpus), "--max-concurrent", str(concurrent),
            "--storage-path", str(storage), "--name", name, "--verbose", "0", "--max-failures", "0",
            "--set", f"dataset_options={json.dumps(options)}", "--set", f"valid_size={valid}",
            "--set", "meta_per_class=0", "--set", "noise_rate=0.4", "--set", "augment=true",
            "--set", f"eval_batch_size={sizes['eval_batch_size']}", "--set", "pretrain_cache=off"]


def run_search(cmd: list[str], timeout: float, experiment: Path, n_images: int) -> dict[str, Any]:
    """One search CLI call; its search phase's throughput from the manifest it writes."""
    t0 = time.perf_counter()
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    # Ray's trial processes must import the project also where it is not pip-installed (a bare
    # GPU machine that got only the checkout)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # its own session, so a timeout ends the local Ray cluster it started too, not just the driver
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=max(timeout, 1.0))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        stdout, stderr = proc.communicate()
        raise RuntimeError(f"the search did not finish within {timeout:.0f} s (time budget) and was "
                           f"stopped; its output ended with: {stdout[-1200:]!r}") from None
    wall = time.perf_counter() - t0
    manifest_path = experiment / "manifest.json"
    if not manifest_path.exists():
        raise RuntimeError(f"search exited with {proc.returncode} and wrote no manifest; "
                           f"stderr: {stderr[-1500:]!r}")
    manifest = json.loads(manifest_path.read_text())
    timing = next(iter(manifest.get("timing", {}).values()), {})
    search_s = float(timing.get("search_seconds") or math.nan)
    epochs = int(timing.get("search_epochs") or 0)
    out = {"returncode": proc.returncode, "command_wall_seconds": round(wall, 2),
           "search_seconds": search_s, "search_epochs": epochs,
           "search_trial_seconds": timing.get("search_trial_seconds"),
           "resources": manifest.get("resources"),
           "train_images_per_second": epochs * n_images / search_s if search_s and epochs else math.nan}
    if proc.returncode != 0:
        out["stderr_tail"] = stderr[-1500:]
    return out


def _kill_group(proc: subprocess.Popen) -> None:
    import signal

    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def phase_search_throughput(sizes: dict[str, Any], has_gpu: bool, budget: Budget,
                            work: Path) -> dict[str, Any]:
    import importlib.util

    missing = [m for m in ("ray", "optuna") if importlib.util.find_spec(m) is None]
    if missing:
        return {"skipped": f"the search CLI needs {' and '.join(missing)}, not installed in this Python "
                           f"({sys.executable}); carry their wheels (docs/benchmarks-images.md)"}
    n = sizes["search_images"]
    cpus = sizes["cpus_per_trial"]
    runs = {}
    for label, trials, gpus, concurrent in (("four_at_0.25", 4, 0.25, 4), ("one_alone", 1, 1.0, 1)):
        left = budget.left()
        if left < 30:
            runs[label] = {"skipped": f"only {left:.0f} s of the time budget left"}
            continue
        g = gpus if has_gpu else 0.0
        cmd = search_command(sizes, work, label, trials, g, cpus, concurrent)
        share = 0.6 if label == "four_at_0.25" else 1.0
        runs[label] = {"command": " ".join(cmd),
                       **run_search(cmd, min(sizes["search_timeout"], left * share), work / label, n)}
    out: dict[str, Any] = {"unit": f"synthetic-images 3x{sizes['image_size']}x{sizes['image_size']}, "
                                   f"{n} training images, resnet32, normal, {sizes['search_epochs']} epochs",
                           "gpus_per_trial_honoured": has_gpu, **runs}
    a, b = runs.get("four_at_0.25", {}), runs.get("one_alone", {})
    if isinstance(a.get("train_images_per_second"), float) and isinstance(b.get("train_images_per_second"), float):
        out["throughput_ratio_four_vs_one"] = a["train_images_per_second"] / b["train_images_per_second"]
    return out


# --------------------------------------------------------------------------- phase 3
def phase_fmnist(sizes: dict[str, Any], device: str, budget: Budget, epoch_seconds: float | None,
                 data_root: str | None, work: Path) -> dict[str, Any]:
    from deca_tune.training.image_trainer import ImageTrainer

    dataset = sizes["fmnist_dataset"]
    common = dict(dataset=dataset, noise_rate=0.4, noise_type="symmetric", data_seed=0, lr=0.1,
                  data_root=data_root, pretrain_cache=str(work / "pretrained"),
                  train_size=sizes["fmnist_train"], valid_size=sizes["fmnist_valid"])
    if dataset == "synthetic-images":
        # Fashion-MNIST's shape and sizes (tiny: a few 8x8 images)
        common["dataset_options"] = dict(sizes["synthetic_options"])
        common["meta_per_class"] = 2 if sizes["synthetic_options"]["n_train"] < 10_000 else 100
    # plan the epochs: normal (= f') then deca_p (~1.2x a normal epoch) must fit what is left
    per_epoch = epoch_seconds if epoch_seconds and math.isfinite(epoch_seconds) else None
    left = budget.left()
    if per_epoch is None:
        epochs = 1
    else:
        epochs = int(max(1, min(sizes["fmnist_max_epochs"], left / (2.3 * per_epoch * 1.1))))
    base = _trainer_spec(sizes, device, **common, max_epochs=epochs)
    out: dict[str, Any] = {"dataset": dataset, "noise": "40% symmetric", "backbone": "resnet32",
                           "planned_epochs": epochs, "planned_from_epoch_seconds": per_epoch,
                           "lr": 0.1, "schedule": "cosine over the planned epochs"}

    def run(spec: dict[str, Any], label: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        trainer = ImageTrainer(spec)
        curve = []
        stopped = False
        while not trainer.finished:
            if curve and budget.left() < 1.2 * curve[-1]["epoch_seconds"]:
                out.setdefault("notes", []).append(f"{label} stopped after epoch {trainer.epoch}: time budget")
                stopped = True
                break
            m = trainer.train_epoch()
            curve.append({k: m[k] for k in ("epoch", "test_clean/accuracy", "valid/accuracy",
                                            "epoch_seconds", "pretrain_seconds") if k in m}
                         | {k: m[k] for k in ("train/accuracy",) if k in m})
        if label == "normal" and not stopped:  # the full run is DeCA(p)'s prior: into the f' cache
            _store_prior(trainer)
        return {"seconds": round(time.perf_counter() - t0, 2), "epochs": trainer.epoch, "stopped": stopped,
                "last_test_acc": curve[-1]["test_clean/accuracy"] if curve else math.nan,
                "selected_test_acc": trainer.best.get("test_clean/accuracy", math.nan),
                "selected_epoch": trainer.best.get("epoch"),
                "pretrain": dict(trainer.pretrain_info) if trainer.pretrain_info else None,
                "train_images": len(trainer.split.train_y_noisy), "curve": curve}

    out["normal_seed1000"] = run({**base, "method": "normal", "seed": 1000}, "normal")
    if out["normal_seed1000"]["stopped"] or budget.left() < 10:
        out["deca_p_seed0"] = {"skipped": "normal (its prior f') did not finish in the time budget"
                               if out["normal_seed1000"]["stopped"] else f"only {budget.left():.0f} s left"}
        return out
    out["deca_p_seed0"] = run({**base, "method": "deca_p", "seed": 0, "T1": max(1, epochs // 2)}, "deca_p")
    return out


def _store_prior(trainer: Any) -> None:
    """Put the finished normal run's best weights where DeCA(p) (seed 0) looks for its f'."""
    from deca_tune.training.pretrain import _atomic_save, cache_dir, pretrain_key

    folder = cache_dir(trainer.spec)
    if folder is None:
        return
    if trainer.best_state is not None:
        trainer.method.load_state_dict(trainer.best_state)
    relevant, key = pretrain_key(trainer.spec, trainer.split)
    path = folder / f"{trainer.split.name}__{trainer.spec['backbone']}__seed{trainer.spec['seed']}__{key[:16]}.pt"
    state = {k: v.detach().cpu() for k, v in trainer.method.f.state_dict().items()}
    _atomic_save({"state_dict": state, "key": key, "spec": json.dumps(relevant, sort_keys=True, default=str)}, path)


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deca_tune.bench gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny sizes (a CPU check of the script in ~30 s)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="wall-clock budget of the whole call (default 460; --tiny: 150)")
    p.add_argument("--out", default="results/bench-gpu.json", help="the JSON file of all figures")
    p.add_argument("--work-dir", default=None, help="search experiments and the f' cache (default: a temp dir)")
    p.add_argument("--data-root", default=None, help="data folder holding fashion-mnist")
    p.add_argument("--phases", nargs="+", default=["epoch_time", "search_throughput", "fmnist_40"],
                   choices=["epoch_time", "search_throughput", "fmnist_40"])
    p.add_argument("--allow-cpu", action="store_true", help="run the full sizes even without a GPU")
    kit = p.add_argument_group("the kit for a lent GPU machine (deca_tune/bench/gpu_kit.py)")
    kit.add_argument("--kit", metavar="DIR", default=None,
                     help="build the kit in DIR (inside the checkout, ignored by git, e.g. .kit), check its "
                          "size and print the device run command; runs no phase")
    kit.add_argument("--check-kit", metavar="DIR", default=None,
                     help="install the kit of DIR into a fresh folder and run a small real search from an "
                          "environment that lacks its packages (build it with --python-version of this Python)")
    kit.add_argument("--python-version", default="3.12", help="the kit's Python (default 3.12, the GPU machine's)")
    return p


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    os.replace(tmp, path)


def _fmnist_available(data_root: str | None) -> bool:
    from deca_tune.data.image.split import split_from_spec  # noqa: F401  (import check)
    from deca_tune.data.loading import load_dataset

    try:
        load_dataset("image", "fashion-mnist", data_root=data_root, download=False)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not here"
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.kit or args.check_kit:
        from deca_tune.bench import gpu_kit

        if args.check_kit:
            return gpu_kit.check_kit(Path(args.check_kit), gpu_kit.CHECK_SEARCH)
        info = gpu_kit.build_kit(Path(args.kit), args.python_version, args.data_root,
                                 args.budget_s if args.budget_s is not None else 460.0)
        print(json.dumps(info, indent=2))
        if not info["inside_checkout_and_ignored"]:
            print(f"the kit must lie inside the checkout and be ignored by git (add it to .gitignore or "
                  f".git/info/exclude) to travel with carry", file=sys.stderr)
            return 2
        if info["total_mib"] > gpu_kit.LIMIT_MIB:
            print(f"kit + working tree = {info['total_mib']} MiB, over the {gpu_kit.LIMIT_MIB} MiB limit",
                  file=sys.stderr)
            return 2
        print(f"\ndevice run: carry {info['carry']}, timeout_s 600, command ({len(info['command'])} chars):\n"
              f"{info['command']}")
        return 0
    import torch

    has_gpu = torch.cuda.is_available()
    if not has_gpu and not args.tiny and not args.allow_cpu:
        print("python -m deca_tune.bench gpu: no CUDA device is visible (torch.cuda.is_available() is "
              "False); run it on a GPU machine, or add --tiny for the CPU check of the script "
              "(--allow-cpu runs the full sizes on the CPU, which takes hours)", file=sys.stderr)
        return 2
    sizes = dict(SIZES["tiny" if args.tiny else "gpu"])
    budget = Budget(args.budget_s if args.budget_s is not None else (150.0 if args.tiny else 460.0))
    device = "cuda" if has_gpu else "cpu"
    if not has_gpu:
        torch.set_num_threads(1)
    out_path = Path(args.out)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="deca-bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "tiny": args.tiny,
                              "budget_s": budget.seconds, "device": device_info(), "phases": {},
                              "errors": {}, "load_average": list(os.getloadavg())}
    if not args.tiny and "fmnist_40" in args.phases and not _fmnist_available(args.data_root):
        sizes["fmnist_dataset"] = "synthetic-images"
        sizes["fmnist_train"], sizes["fmnist_valid"] = None, None
        result["notes"] = ["fashion-mnist was not found (pass --data-root or set $DECA_TUNE_DATA): "
                           "phase fmnist_40 ran on the synthetic 28x28 set instead"]
    _write(out_path, result)

    def phase(name: str, fn: Callable[[], dict[str, Any]], need_s: float) -> None:
        if name not in args.phases:
            return
        left = budget.left()
        if left < need_s:
            result["phases"][name] = {"skipped": f"needs ~{need_s:.0f} s, {left:.0f} s of the budget left"}
        else:
            t0 = time.perf_counter()
            try:
                result["phases"][name] = fn()
            except Exception as exc:  # noqa: BLE001 - a failed phase is recorded, the next one runs
                result["errors"][name] = f"{type(exc).__name__}: {exc}"
                result["phases"][name] = {"failed": result["errors"][name],
                                          "traceback": traceback.format_exc()[-3000:]}
            result["phases"][name]["phase_seconds"] = round(time.perf_counter() - t0, 2)
        result["elapsed_seconds"] = round(budget.elapsed(), 2)
        _write(out_path, result)
        print(f"[{budget.elapsed():6.1f} s] {name}: "
              f"{json.dumps({k: v for k, v in result['phases'][name].items() if k not in ('curve', 'epochs', 'traceback')}, default=str)[:600]}",
              flush=True)

    phase("epoch_time", lambda: phase_epoch_time(sizes, device, budget), 20)
    phase("search_throughput", lambda: phase_search_throughput(sizes, has_gpu, budget, work), 40)
    epoch_s = result["phases"].get("epoch_time", {}).get("epoch_seconds")
    phase("fmnist_40", lambda: phase_fmnist(sizes, device, budget, epoch_s, args.data_root, work), 15)
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    result["elapsed_seconds"] = round(budget.elapsed(), 2)
    _write(out_path, result)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {out_path} ({budget.elapsed():.0f} s)")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
