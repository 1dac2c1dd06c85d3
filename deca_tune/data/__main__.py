"""``python -m deca_tune.data describe NAME [--data-root DIR] [--set KEY=VALUE ...] [--option K=V ...]``

Prints one JSON object: the statistics of the split a spec with that data set trains on (the
paper's Table 1 row for a recommendation data set; sizes and realised noise for an image one).
``--set`` takes spec entries as ``python -m deca_tune.search --set`` does (YAML values, dotted
keys: ``--set noise_rate=0.2``, ``--set dataset_options.path=my.csv``); ``--option K=V`` is short
for ``--set dataset_options.K=V`` and is accepted by the search too. Exit status 2 for an unknown
name, option or setting (the message lists the choices), 1 when the data is missing and cannot
be downloaded (the message names the URL and the expected path) or a file is malformed (the
message names the file and line).
"""
from __future__ import annotations

import argparse
import json
import sys

from deca_tune.data.download import DataUnavailableError
from deca_tune.data.loading import UnknownOptionError, check_options, load_split
from deca_tune.data.readers import MalformedFileError
from deca_tune.options import OptionError, key_value, nested
from deca_tune.registry import UnknownNameError
from deca_tune.tasks import SpecError, task_of_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deca_tune.data",
                                     description="Inspect the data sets of both task families.")
    sub = parser.add_subparsers(dest="command", required=True)
    from deca_tune.data.custom_csv import CSV_OPTIONS_HELP
    from deca_tune.data.image.folder import IMAGE_FILES_HELP

    describe = sub.add_parser("describe", help="print the statistics of a data set's split as JSON",
                              description=__doc__.split("\n\n")[1],
                              epilog="Options of the csv data set (your own ratings file):\n\n"
                                     + CSV_OPTIONS_HELP + "\nOptions of the image-folder and image-csv "
                                     "data sets (your own images):\n\n" + IMAGE_FILES_HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    describe.add_argument("name", help="a recommendation or image data set (an unknown name lists them)")
    describe.add_argument("--data-root", default=None,
                          help="folder with the data files (default: $DECA_TUNE_DATA or ~/.cache/deca_tune)")
    describe.add_argument("--set", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                          help="spec entry (YAML value, dotted keys), e.g. --set noise_rate=0.2")
    describe.add_argument("--option", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                          help="loader option, short for --set dataset_options.KEY=VALUE (repeatable)")
    describe.add_argument("--no-download", action="store_true", help="never download, only read local files")
    args = parser.parse_args(argv)

    try:
        task = task_of_dataset(args.name)
        settings = nested(args.set)
        settings["dataset_options"] = nested(args.option, settings.get("dataset_options") or {})
        spec = task.make_spec(**{**settings, "dataset": args.name, "data_root": args.data_root,
                                 "download": not args.no_download})
        check_options(task.name, args.name, spec["dataset_options"])
        task.validate_spec(spec)
        split = load_split(task.name, spec)
    except (UnknownNameError, UnknownOptionError, SpecError, OptionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (DataUnavailableError, MalformedFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"task": task.name, **split.stats()}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
