"""Number formatting shared by the benchmark reports."""
from __future__ import annotations

import statistics
from typing import Sequence


def mean_std(values: Sequence[float], digits: int = 4) -> str:
    """``"mean ± std"`` of ``values`` (sample std; 0 for one value), ``"-"`` for none."""
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"
