"""Read an experiment folder (docs/architecture.md, "Experiment folder") into pandas frames.

Nothing here trains or imports Ray: the analysis only reads the files the search wrote. A
partial or resumed experiment is fine: missing summary files give empty frames plus a warning,
and the runs that were planned but are absent stay visible through :meth:`Experiment.groups`
and :meth:`Experiment.expected_seeds`, so tables can mark them as missing.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

#: the keys that name one run family; one seed-run row per (keys, seed)
GROUP_KEYS: tuple[str, ...] = ("dataset", "backbone", "method")
#: settings that split a family further (image noise rate; Table 6's choice of h model)
VARIANT_KEYS: tuple[str, ...] = ("noise_rate", "h_backbone")
#: Tune / search statuses that mean "this run did not produce a usable result"
FAILED_STATUSES = frozenset({"error"})
#: folder names of Tune experiments: ``<dataset>__<backbone>__<method>``
_FOLDER_RE = re.compile(r"^(?P<dataset>[^_][^/]*?)__(?P<backbone>[^/]+?)__(?P<method>[^/]+)$")


class ExperimentError(ValueError):
    """A file of the experiment folder is missing or cannot be read; the message names it."""


def _read_csv(path: Path, warnings: list[str] | None = None) -> pd.DataFrame:
    """The CSV at ``path`` (empty frame if missing). A last row cut short (the file ends mid-row:
    a driver stopped while writing it, a copy that did not finish) is left out with a warning in
    ``warnings``; any other row whose field count differs from the header's raises
    :class:`ExperimentError` naming the file and the line."""
    if not path.exists():
        return pd.DataFrame()
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise ExperimentError(f"{path}: cannot parse as CSV: {exc}") from exc
    if not text.strip():
        return pd.DataFrame()
    records = list(csv.reader(io.StringIO(text)))
    width, starts, line = len(records[0]), [], 1
    for record in records:  # the line each record starts on (a quoted field may span lines)
        starts.append(line)
        line += 1 + sum(field.count("\n") for field in record)
    short = [i for i, r in enumerate(records) if i and r and len(r) != width]
    last = len(records) - 1
    if short and short[-1] == last and len(records[last]) < width:
        if warnings is not None:
            warnings.append(f"{path}:{starts[last]}: the last row is cut short ({len(records[last])} of "
                            f"{width} fields): left out; the report uses the {last - 1} rows before it")
        text = "".join(f"{row}\n" for row in text.split("\n")[:starts[last] - 1])
        short.pop()
    if short:
        i = short[0]
        raise ExperimentError(f"{path}:{starts[i]}: {len(records[i])} fields where the header has "
                              f"{width}: a damaged row")
    try:
        return pd.read_csv(io.StringIO(text))
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except pd.errors.ParserError as exc:
        raise ExperimentError(f"{path}: cannot parse as CSV: {exc}") from exc


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Give ``config/<name>`` columns their bare name (unless taken) and tidy key dtypes."""
    if frame.empty:
        return frame
    renames = {}
    for col in frame.columns:
        if isinstance(col, str) and col.startswith("config/"):
            bare = col[len("config/"):]
            if bare not in frame.columns and bare not in renames.values():
                renames[col] = bare
    frame = frame.rename(columns=renames)
    for key in GROUP_KEYS + ("h_backbone", "status", "task"):
        if key in frame.columns:
            frame[key] = frame[key].astype("string")
    if "seed" in frame.columns:
        frame["seed"] = pd.to_numeric(frame["seed"], errors="coerce").astype("Int64")
    if "noise_rate" in frame.columns:
        frame["noise_rate"] = pd.to_numeric(frame["noise_rate"], errors="coerce")
    return frame


def _find(mapping: Any, *names: str) -> Any:
    """First value found under any of ``names`` at the top level or one level down."""
    if not isinstance(mapping, dict):
        return None
    for name in names:
        if name in mapping:
            return mapping[name]
    for value in mapping.values():
        if isinstance(value, dict):
            for name in names:
                if name in value:
                    return value[name]
    return None


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in re.split(r"[,\s]+", value) if v]
    if isinstance(value, (int, float)):
        return [value]
    return list(value)


@dataclass
class Experiment:
    """The frames of one experiment folder, with helpers that know what is missing."""

    root: Path
    manifest: dict = field(default_factory=dict)
    seed_runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    search_trials: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the ``config/<name>`` columns of search_trials.csv, by bare name
    search_params: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    # ---------------------------------------------------------------- seeds
    @property
    def n_expected_seeds(self) -> int:
        """Seeds every family should have: the manifest's seeds (a list or a count), else the
        number of distinct seeds seen in the seed runs."""
        seeds = _find(self.manifest, "seeds")
        if isinstance(seeds, bool):
            seeds = None
        if isinstance(seeds, int):
            return seeds
        if _as_list(seeds):
            return len(_as_list(seeds))
        if self.seed_runs.empty or "seed" not in self.seed_runs:
            return 0
        return int(self.seed_runs["seed"].dropna().nunique())

    # ---------------------------------------------------------------- groups
    def groups(self) -> pd.DataFrame:
        """Every planned or seen run family: (dataset, backbone, method [, variants]).

        Union of the seed runs, the search trials, the Tune folders under ``search/`` and
        ``seeds/`` and the manifest's plan, so a family whose seed runs never happened still
        appears (as missing) in the tables.
        """
        frames = []
        for frame in (self.seed_runs, self.search_trials):
            if not frame.empty and all(k in frame for k in GROUP_KEYS):
                cols = list(GROUP_KEYS) + [k for k in VARIANT_KEYS if k in frame]
                frames.append(frame[cols])
        rows = []
        for sub in ("search", "seeds"):
            folder = self.root / sub
            if folder.is_dir():
                for child in folder.iterdir():
                    match = _FOLDER_RE.match(child.name)
                    if child.is_dir() and match:
                        rows.append(match.groupdict())
        plan = [_as_list(_find(self.manifest, k)) for k in ("datasets", "backbones", "methods")]
        if all(plan):
            rows += [{"dataset": str(d), "backbone": str(b), "method": str(m)}
                     for d in plan[0] for b in plan[1] for m in plan[2]]
        if rows:
            frames.append(pd.DataFrame(rows))
        if not frames:
            return pd.DataFrame(columns=list(GROUP_KEYS))
        out = pd.concat(frames, ignore_index=True)
        for key in GROUP_KEYS:
            out[key] = out[key].astype("string")
        # a family seen with variants should not also appear variant-less (from folder names)
        variants = [k for k in VARIANT_KEYS if k in out]
        if variants:
            has_variant = out[variants].notna().any(axis=1)
            with_v = out[has_variant][list(GROUP_KEYS)].drop_duplicates()
            keyed = out.set_index(list(GROUP_KEYS)).index
            covered = keyed.isin(with_v.set_index(list(GROUP_KEYS)).index)
            out = out[has_variant.to_numpy() | ~covered]
        return out.drop_duplicates().reset_index(drop=True)

    # ---------------------------------------------------------------- tasks
    def task_of(self, dataset: str) -> str:
        """``"image"`` or ``"rec"`` for a data set of this experiment."""
        for frame in (self.seed_runs, self.curves, self.search_trials):
            if not frame.empty and "task" in frame and "dataset" in frame:
                tasks = frame.loc[frame["dataset"] == dataset, "task"].dropna().unique()
                if len(tasks):
                    return str(tasks[0])
        units = self.manifest.get("units") if isinstance(self.manifest, dict) else None
        for unit in units or ():
            if isinstance(unit, dict) and unit.get("dataset") == dataset and unit.get("task"):
                return str(unit["task"])
        if not self.seed_runs.empty and "dataset" in self.seed_runs:
            rows = self.seed_runs[self.seed_runs["dataset"] == dataset]
            acc = [c for c in rows.columns if str(c).endswith("/accuracy")]
            if acc and rows[acc].notna().any().any():
                return "image"
        return "rec"

    def datasets(self, task: str | None = None) -> list[str]:
        names = [str(d) for d in self.groups()["dataset"].dropna().unique()]
        return [d for d in names if task is None or self.task_of(d) == task]

    def usable_runs(self, metric_columns: Iterable[str] = ()) -> pd.DataFrame:
        """Seed runs that finished: status not failed and every requested metric finite."""
        runs = self.seed_runs
        if runs.empty:
            return runs
        ok = np.ones(len(runs), dtype=bool)
        if "status" in runs:
            status = runs["status"].fillna("").str.lower()
            ok &= ~status.isin(FAILED_STATUSES).to_numpy()
        for col in metric_columns:
            if col in runs:
                ok &= np.isfinite(pd.to_numeric(runs[col], errors="coerce").to_numpy(float))
        return runs[ok]


def _merge_noise_detection(runs: pd.DataFrame, path: Path, warnings: list[str]) -> pd.DataFrame:
    """Add the per-run noise-detection scores of ``exports/noise_detection.csv`` (written by
    :func:`analysis.exports.export_scores`) to the seed runs that lack them."""
    scores = _normalise(_read_csv(path, warnings))
    cols = [c for c in ("noise_auc", "noise_precision") if c in scores and c not in runs]
    keys = list(GROUP_KEYS) + ["seed"]
    if runs.empty or scores.empty or not cols or not all(k in scores for k in keys):
        return runs
    scores = scores.drop_duplicates(subset=keys, keep="last")
    return runs.merge(scores[keys + cols], on=keys, how="left")


def load_experiment(root: str | Path) -> Experiment:
    """Read ``root`` (an experiment folder). Raises :class:`ExperimentError` if it is not one."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ExperimentError(f"experiment folder {root} does not exist")
    exp = Experiment(root=root)
    manifest = root / "manifest.json"
    if manifest.exists():
        try:
            exp.manifest = json.loads(manifest.read_text())
        except json.JSONDecodeError as exc:
            raise ExperimentError(f"{manifest}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    else:
        exp.warnings.append(f"{manifest} is missing: the planned runs and seeds are inferred "
                            "from the files that exist")
    summary = root / "summary"
    for attr, name in (("seed_runs", "seed_runs.csv"), ("curves", "curves.csv"),
                       ("summary", "summary.csv"), ("search_trials", "search_trials.csv")):
        raw = _read_csv(summary / name, exp.warnings)
        if name == "search_trials.csv":
            exp.search_params = [c[len("config/"):] for c in raw.columns
                                 if isinstance(c, str) and c.startswith("config/")]
        frame = _normalise(raw)
        setattr(exp, attr, frame)
        if frame.empty:
            exp.warnings.append(f"{summary / name} is missing or empty (experiment unfinished?)")
    exp.seed_runs = _merge_noise_detection(exp.seed_runs, root / "exports" / "noise_detection.csv",
                                           exp.warnings)
    for name, frame in (("seed_runs.csv", exp.seed_runs), ("curves.csv", exp.curves)):
        missing = [k for k in GROUP_KEYS + ("seed",) if not frame.empty and k not in frame]
        if missing:
            raise ExperimentError(f"{summary / name}: missing column(s) {', '.join(missing)}")
    if not (root / "summary").is_dir() and not (root / "search").is_dir() \
            and not (root / "seeds").is_dir() and not manifest.exists():
        raise ExperimentError(f"{root} is not an experiment folder: no manifest.json, summary/, "
                              "search/ or seeds/ inside")
    return exp
