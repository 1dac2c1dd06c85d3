"""``python -m deca_tune.motivation``: the motivation study of the paper (section 3, Fig. 1/2).

Examples::

    python -m deca_tune.motivation --task rec --dataset ml-100k --backbones mf gmf neumf lightgcn
    python -m deca_tune.motivation --task image --dataset mnist --backbones convnet mlp --max-epochs 3

The work is done by :mod:`analysis.motivation`; this is the command line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from analysis.motivation import format_pairs, run_motivation, write_motivation

DEFAULTS = {"rec": ("ml-100k", ["mf", "gmf", "neumf", "lightgcn"], 20),
            "image": ("mnist", ["convnet", "mlp"], 3)}


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deca_tune.motivation", description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=["rec", "image"], default="rec")
    parser.add_argument("--dataset", help="default: ml-100k (rec), mnist (image)")
    parser.add_argument("--backbones", nargs="+", help="default: mf gmf neumf lightgcn (rec), convnet mlp (image)")
    parser.add_argument("--seeds", nargs=2, type=int, default=[0, 1], metavar="SEED",
                        help="the two seeds of the same-backbone pairs (the first also for the "
                             "different-backbone pairs)")
    parser.add_argument("--max-epochs", type=int, help="default: 20 (rec), 3 (image)")
    parser.add_argument("--noise-rate", type=float, default=0.4, help="image: injected noise (default 0.4)")
    parser.add_argument("--data-root")
    parser.add_argument("--set", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                        help="extra spec keys (JSON values), e.g. --set lr=0.001 --set train_size=20000")
    parser.add_argument("--out", default="results/motivation", help="output folder")
    args = parser.parse_args(argv)
    dataset, backbones, epochs = DEFAULTS[args.task]
    overrides = dict(args.set)
    if args.task == "image":
        overrides.setdefault("noise_rate", args.noise_rate)
    from deca_tune.registry import UnknownNameError

    try:
        result = run_motivation(args.task, args.dataset or dataset, args.backbones or backbones,
                                seeds=args.seeds, max_epochs=args.max_epochs or epochs,
                                data_root=args.data_root, spec_overrides=overrides)
    except (UnknownNameError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = write_motivation(result, Path(args.out))
    print(format_pairs(result))
    print(result.models.to_string(index=False))
    print("written:", *files, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
