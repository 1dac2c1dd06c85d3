"""``python -m deca_tune.bench [NAME] [options]``: run one benchmark (default: ``speed``)."""
from __future__ import annotations

import importlib
import sys

#: benchmark name -> module with a ``main(argv)`` function
BENCHMARKS = {
    "speed": "deca_tune.bench.speed",
    "denoising": "deca_tune.bench.denoising",
    "images": "deca_tune.bench.images",
    "search": "deca_tune.bench.search",
    "gpu": "deca_tune.bench.gpu",
    "fidelity": "deca_tune.bench.fidelity",
    "scale": "deca_tune.bench.scale",
    "image-files": "deca_tune.bench.image_files",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv.pop(0) if argv and not argv[0].startswith("-") else "speed"
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    return int(importlib.import_module(BENCHMARKS[name]).main(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
