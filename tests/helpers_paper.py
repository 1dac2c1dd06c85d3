"""Read the result tables (2-6) out of the paper's Markdown text (``deca-paper.md``).

Used by ``tests/test_published.py`` to check every cell of ``analysis/published/deca_paper.csv``
against the paper: a cell is (table, data set, block, row, column) with its value, the std where
the paper prints ``value±std``, and the paper's bold / star marks. Names are the paper's; the
project's names come from the same maps as the data file (:mod:`analysis.published`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

#: where the paper's text lies on the project's machines (``DECA_PAPER`` overrides)
PAPER_PATHS = (Path("/work/shared/paper/deca-paper.md"),)

_CELL = re.compile(r"^(?P<b><b>)?(?P<v>-?[0-9.]+)%?(?:±(?P<s>[0-9.]+)%?)?(?P<star>\*)?(?:</b>)?$")


def paper_text() -> str | None:
    """The paper's Markdown, or None when it is not on this machine."""
    paths = ([Path(os.environ["DECA_PAPER"])] if os.environ.get("DECA_PAPER") else []) + list(PAPER_PATHS)
    for path in paths:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


def parse_cell(text: str) -> dict:
    """``"<b>0.109±0.007*</b>"`` -> value, std (None when absent), bold, star; percentages as
    printed (``89.01``, unit ``%``)."""
    text = text.strip()
    m = _CELL.match(text)
    if not m:
        raise ValueError(f"not a table cell: {text!r}")
    return {"value": m["v"], "std": m["s"], "bold": bool(m["b"]), "star": bool(m["star"]),
            "percent": "%" in text}


def _table_lines(text: str, caption: str, stop: str) -> list[str]:
    """The tab-separated lines after the line starting with ``caption`` up to ``stop``."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(caption))
    out = []
    for ln in lines[start + 1:]:
        if ln.startswith(stop):
            break
        if "\t" in ln:
            out.append(ln)
    return out


def _blocked(lines: list[str], table: int) -> list[dict]:
    """Tables 2/3: a data-set header line (name + 8 metric labels), block lines (two backbone
    names), method rows of 8 cells."""
    cells, dataset, columns, blocks = [], None, [], []
    for ln in lines:
        parts = ln.split("\t")
        if parts[0] and parts[1].startswith(("R@", "N@")):
            dataset, columns = parts[0], parts[1:]
        elif not parts[0]:
            blocks = [p for p in parts[1:] if p]
        else:
            for j, raw in enumerate(parts[1:]):
                cells.append({"table": table, "dataset": dataset, "block": blocks[j // 4],
                              "row": parts[0], "column": columns[j], **parse_cell(raw)})
    return cells


def paper_cells(text: str) -> list[dict]:
    """Every result cell of Tables 2-6 (paper names)."""
    cells = _blocked(_table_lines(text, "Table 2.", "**5.2.2"), 2)
    cells += _blocked(_table_lines(text, "Table 3.", "Table 4."), 3)
    dataset = None
    for ln in _table_lines(text, "Table 4.", "the table, we can"):
        parts = ln.split("\t")
        if "±" not in parts[1]:  # a header: data set and noise rates
            dataset, columns = parts[0], parts[1:]
            continue
        for j, raw in enumerate(parts[1:]):
            cells.append({"table": 4, "dataset": dataset, "block": "ResNet-32", "row": parts[0],
                          "column": columns[j], **parse_cell(raw)})
    lines = _table_lines(text, "Table 5.", "with GMF as the target")
    blocks = [p for p in lines[0].split("\t") if p]
    columns = lines[1].split("\t")[1:]
    for ln in lines[2:]:
        parts = ln.split("\t")
        for j, raw in enumerate(parts[1:]):
            cells.append({"table": 5, "dataset": "Modcloth", "block": blocks[j // 4], "row": parts[0],
                          "column": columns[j], **parse_cell(raw)})
    lines = _table_lines(text, "Table 6.", "- DP is better")
    columns = lines[0].split("\t")[2:]
    method = None
    for ln in lines[1:]:
        parts = ln.split("\t")
        method = parts[0] or method
        row = method if not parts[1] else f"{method} (h, h' = {parts[1]})"
        for j, raw in enumerate(parts[2:]):
            cells.append({"table": 6, "dataset": "Modcloth", "block": "", "row": row,
                          "column": columns[j], **parse_cell(raw)})
    return cells
