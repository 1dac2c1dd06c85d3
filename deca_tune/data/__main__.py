"""``python -m deca_tune.data describe NAME [--data-root DIR] [--option key=value ...]``

Prints one JSON object: the split statistics (the paper's Table 1 row for any data set).
Exit status 2 for an unknown name or option (the message lists the choices), 1 when the data
is missing and cannot be downloaded (the message names the URL and the expected path).
"""
from __future__ import annotations

import argparse
import json
import sys

from deca_tune.data import REC_DATASETS, UnknownOptionError, load_rec_dataset
from deca_tune.data.download import DataUnavailableError
from deca_tune.data.readers import MalformedFileError
from deca_tune.registry import UnknownNameError


def parse_value(text: str) -> object:
    """``--option`` values: int, float, true/false/none, else the string itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_options(pairs: list[str], parser: argparse.ArgumentParser) -> dict[str, object]:
    options = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            parser.error(f"--option {pair!r}: expected key=value")
        options[key.strip()] = parse_value(value)
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deca_tune.data",
                                     description="Inspect the recommendation data sets.")
    sub = parser.add_subparsers(dest="command", required=True)
    describe = sub.add_parser("describe", help="print the split statistics of a data set as JSON")
    describe.add_argument("name", help=f"one of: {', '.join(REC_DATASETS.names())}")
    describe.add_argument("--data-root", default=None,
                          help="folder with the data files (default: $DECA_TUNE_DATA or ~/.cache/deca_tune)")
    describe.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                          help="loader option, e.g. --option seed=1 (repeatable)")
    describe.add_argument("--no-download", action="store_true", help="never download, only read local files")
    args = parser.parse_args(argv)

    options = parse_options(args.option, parser)
    try:
        split = load_rec_dataset(args.name, data_root=args.data_root,
                                 download=not args.no_download, **options)
    except (UnknownNameError, UnknownOptionError) as exc:  # the message lists the choices
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (DataUnavailableError, MalformedFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(split.stats()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
