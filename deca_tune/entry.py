"""``deca-tune COMMAND [options]``: the console entry point (``[project.scripts]`` in
pyproject.toml), the same as ``python -m deca_tune.COMMAND [options]``; ``python -m deca_tune``
is this dispatcher too.

Commands: ``search``, ``report``, ``recommend``, ``data``, ``bench``, ``motivation``; each is the
``main(argv)`` of its module, so options, output and exit status are that command's.
"""
from __future__ import annotations

import importlib
import sys
from typing import Sequence

from deca_tune.registry import did_you_mean

#: command -> (module with ``main(argv)``, one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "search": ("deca_tune.search", "search hyperparameters with Ray Tune and rerun the best with seeds"),
    "report": ("deca_tune.report", "tables and figures of an experiment folder"),
    "recommend": ("deca_tune.recommend", "top-K items per user from a trained trial"),
    "data": ("deca_tune.data.__main__", "inspect data sets (describe NAME)"),
    "bench": ("deca_tune.bench.__main__", "benchmarks (speed, denoising, images, search, ...)"),
    "motivation": ("deca_tune.motivation", "the paper's section 3 study"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: deca-tune COMMAND [options]   (deca-tune COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``argv[0]``'s ``main`` with the rest of ``argv``; returns its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"deca-tune: error: unknown command {name!r}{did_you_mean(name, COMMANDS)}; choose one "
              f"of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except SystemExit as exc:  # argparse's exits (--help, bad options) keep their status
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


if __name__ == "__main__":
    sys.exit(main())
