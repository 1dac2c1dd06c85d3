"""``python -m deca_tune.bench image-files {decode,mnist} [options]``: your own image files.

decode: writes ``--n`` generated ``--size``x``--size`` RGB PNGs (10 class folders, random
  smooth images) to a temporary folder, then times, with an empty cache folder:
  ``cold`` (``image-folder`` from scratch: scan, SHA-256 of every file, parallel decoding,
  writing the cache entry), ``decode_1_thread`` and ``decode_N_threads`` (decoding alone),
  ``warm`` (the same load again, a new process cache: hashes + reading the cache entry); prints
  files/s, the cache entry's size and the load average (``os.getloadavg``) before and after.

mnist: the first ``--n-train`` MNIST training images (and ``--n-test`` test images) with
  ``--noise`` symmetric noisy labels, once through ``image-folder`` (the digits written as PNGs
  into class folders of their noisy labels, a clean-label CSV, the test digits as a clean test
  folder) and once through the built-in ``mnist`` loader with the same noisy labels (option
  ``noisy_labels``, restricted to the same images); trains ``--backbone`` for ``--epochs`` with
  each of ``--seeds`` and prints the clean test accuracy of both (best epoch on the noisy
  validation split, and the last epoch). The two partitions into train/validation differ
  (the rows are in another order), so the numbers agree within seed noise, not bit for bit.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def _write_pngs(folder: Path, n: int, size: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.random((n, 4, 4, 3)) * 255
    noise = rng.integers(0, 40, (n, size, size, 3))

    def write(i: int) -> None:
        small = Image.fromarray(coarse[i].astype(np.uint8)).resize((size, size), Image.BILINEAR)
        arr = np.clip(np.asarray(small, dtype=np.int64) + noise[i], 0, 255).astype(np.uint8)
        d = folder / f"class{i % 10}"
        Image.fromarray(arr).save(d / f"{i:06d}.png")

    for c in range(10):
        (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(write, range(n)))


def bench_decode(args: argparse.Namespace) -> dict[str, Any]:
    from deca_tune.data.image import folder as folder_mod
    from deca_tune.data.image.decode import decode_files, default_workers

    with tempfile.TemporaryDirectory(prefix="deca-decode-") as tmp:
        tmp = Path(tmp)
        os.environ["DECA_TUNE_CACHE"] = str(tmp / "cache")
        t = time.perf_counter()
        _write_pngs(tmp / "train", args.n, args.size)
        generate = time.perf_counter() - t
        files = sorted((tmp / "train").rglob("*.png"))
        png_bytes = sum(f.stat().st_size for f in files)
        load_before = os.getloadavg()
        opts = {"path": str(tmp / "train"), "channels": 3, "test_fraction": 0.1}
        t = time.perf_counter()
        raw = folder_mod.load_image_folder(tmp, **opts)
        cold = time.perf_counter() - t
        entry_mb = next((tmp / "cache" / folder_mod.CACHE_SUBDIR).glob("*.npz")).stat().st_size / 2**20
        print(f"cold load: {cold:.1f} s ({args.n / cold:.0f} files/s), cache entry {entry_mb:.1f} MiB", flush=True)
        timings = {}
        for workers in (1, default_workers()):
            t = time.perf_counter()
            decode_files(files, 3, None, workers)
            timings[workers] = time.perf_counter() - t
            print(f"decoding alone, {workers} thread(s): {args.n / timings[workers]:.0f} files/s", flush=True)
        t = time.perf_counter()
        again = folder_mod.load_image_folder(tmp, **opts)
        warm = time.perf_counter() - t
        assert again.train_x.shape == raw.train_x.shape
        load_after = os.getloadavg()
    n = args.n
    return {"files": n, "size": args.size, "png_mb": png_bytes / 2**20, "generate_s": generate,
            "cold_s": cold, "cold_files_per_s": n / cold,
            "decode_1_thread_files_per_s": n / timings[1],
            f"decode_{default_workers()}_threads_files_per_s": n / timings[default_workers()],
            "warm_s": warm, "warm_files_per_s": n / warm,
            "cache_entry_mb": entry_mb,
            "tensor_mb": (raw.train_x.numel() + raw.test_x.numel()) / 2**20,
            "threads": default_workers(), "cpus": os.cpu_count(),
            "loadavg_before": load_before, "loadavg_after": load_after}


def bench_mnist(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from PIL import Image

    from deca_tune.data import clear_cache, load_dataset, load_split
    from deca_tune.data.image.noise import inject_noise
    from deca_tune.data.image.split import make_image_split
    from deca_tune.training import build_trainer

    torch.set_num_threads(args.threads)
    mnist = load_dataset("image", "mnist", data_root=args.data_root)
    n, nt = args.n_train, args.n_test
    g = torch.Generator().manual_seed(1234)
    noisy_first, _ = inject_noise(mnist.train_y[:n], 10, args.noise, "symmetric", generator=g)
    noisy_all = mnist.train_y.clone()
    noisy_all[:n] = noisy_first
    results: dict[str, list[dict[str, float]]] = {"image-folder": [], "mnist": []}
    with tempfile.TemporaryDirectory(prefix="deca-mnist-") as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("DECA_TUNE_CACHE", str(tmp / "cache"))
        rows = ["file,label"]
        for i in range(n):
            d = tmp / "train" / str(int(noisy_first[i]))
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mnist.train_x[i, 0].numpy()).save(d / f"tr{i:05d}.png")
            rows.append(f"tr{i:05d}.png,{int(mnist.train_y[i])}")
        (tmp / "clean.csv").write_text("\n".join(rows) + "\n")
        for i in range(nt):
            d = tmp / "test" / str(int(mnist.test_y[i]))
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mnist.test_x[i, 0].numpy()).save(d / f"te{i:05d}.png")
        np.save(tmp / "noisy.npy", noisy_all.numpy())
        raw = load_dataset("image", "mnist", data_root=args.data_root, noisy_labels=str(tmp / "noisy.npy"))
        sub = dataclasses.replace(raw, train_x=raw.train_x[:n], train_y=raw.train_y[:n],
                                  train_y_clean=raw.train_y_clean[:n], test_x=raw.test_x[:nt],
                                  test_y=raw.test_y[:nt], test_y_clean=raw.test_y_clean[:nt])
        folder_opts = {"path": str(tmp / "train"), "test": str(tmp / "test"), "clean": str(tmp / "clean.csv"),
                       "test_labels": "clean", "channels": 1}
        base = {"task": "image", "backbone": args.backbone, "method": "normal", "max_epochs": args.epochs,
                "lr": args.lr, "batch_size": 100, "valid_size": args.n_valid, "meta_per_class": 0,
                "noise_rate": 0.0, "device": "cpu", "data_root": args.data_root}
        for seed in args.seeds:
            for name in ("image-folder", "mnist"):
                spec = {**base, "seed": seed}
                if name == "image-folder":
                    spec.update(dataset="image-folder", dataset_options=folder_opts)
                    split = load_split("image", spec)
                else:
                    spec.update(dataset="mnist")
                    split = make_image_split(sub, seed=seed, noise_rate=0.0, valid_size=args.n_valid,
                                             meta_per_class=0)
                trainer = build_trainer(spec) if name == "image-folder" else build_trainer(spec_for(spec), split)
                t = time.perf_counter()
                best = trainer.fit()
                results[name].append({"seed": seed, "selected": best["test_clean/accuracy"],
                                      "last": trainer.last["test_clean/accuracy"],
                                      "realised_noise": split.realised_noise_rate,
                                      "n_train": len(split.train_y_noisy), "n_test": len(split.test_y),
                                      "seconds": time.perf_counter() - t})
                print(name, results[name][-1], flush=True)
        clear_cache()

    def summary(rs: list[dict[str, float]], key: str) -> str:
        vals = [r[key] for r in rs]
        sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
        return f"{statistics.mean(vals):.4f} ± {sd:.4f}"

    return {"runs": results,
            "summary": {name: {"selected": summary(rs, "selected"), "last": summary(rs, "last")}
                        for name, rs in results.items()},
            "settings": {k: v for k, v in vars(args).items() if k != "func"}}


def spec_for(spec: dict[str, Any]) -> dict[str, Any]:
    """The mnist spec without the options the hand-made subset split does not need."""
    return {k: v for k, v in spec.items() if k != "dataset_options"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deca_tune.bench image-files",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    d = sub.add_parser("decode", help="decoding speed and cache size on generated PNGs")
    d.add_argument("--n", type=int, default=50_000)
    d.add_argument("--size", type=int, default=32)
    m = sub.add_parser("mnist", help="image-folder vs the mnist loader, same images and labels")
    m.add_argument("--data-root", default=None)
    m.add_argument("--n-train", type=int, default=6000, help="training + validation images")
    m.add_argument("--n-valid", type=int, default=1000)
    m.add_argument("--n-test", type=int, default=2000)
    m.add_argument("--noise", type=float, default=0.4)
    m.add_argument("--backbone", default="convnet")
    m.add_argument("--epochs", type=int, default=5)
    m.add_argument("--lr", type=float, default=0.01)
    m.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    m.add_argument("--threads", type=int, default=1)
    for p in (d, m):
        p.add_argument("--out", default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)
    result = bench_decode(args) if args.what == "decode" else bench_mnist(args)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0
