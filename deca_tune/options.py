"""The command-line grammar every command shares: ``--set KEY=VALUE`` and argparse value types.

``KEY=VALUE``: the value is YAML (``lr=0.01``, ``restore_best=false``, ``ks=[5,20]``,
``clean='rating>=4'``); dotted keys reach nested spec entries (``dataset_options.path=x.csv``).
The same grammar serves ``python -m deca_tune.search``, ``deca_tune.data describe``,
``deca_tune.motivation`` and the benchmarks.
"""
from __future__ import annotations

import argparse
from typing import Any, Iterable

import yaml


class OptionError(ValueError):
    """A malformed ``KEY=VALUE`` or nested key; the message quotes it."""


def key_value(text: str) -> tuple[str, Any]:
    """``"a.b=1e-3"`` -> ``("a.b", 0.001)`` (YAML value; an empty value is the empty string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not valid YAML ({exc})") from None
    raw = value.strip()
    if isinstance(parsed, str) and raw and raw[0] not in "'\"":
        for number in (int, float):  # YAML 1.1 reads 1e-3 as a string; a user means a number
            try:
                return key.strip(), number(raw)
            except ValueError:
                pass
    return key.strip(), parsed


def set_nested(target: dict[str, Any], dotted: str, value: Any) -> None:
    """``target["a"]["b"] = value`` for ``dotted="a.b"`` (intermediate mappings are created)."""
    keys = dotted.split(".")
    node = target
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise OptionError(f"--set {dotted}: {k!r} is not a mapping")
    node[keys[-1]] = value


def nested(pairs: Iterable[tuple[str, Any]], into: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mapping that a list of ``(dotted key, value)`` pairs spells."""
    out = dict(into or {})
    for key, value in pairs:
        set_nested(out, key, value)
    return out


def split_list(values: Iterable[str] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``: list options take both ``a b`` and ``a,b``."""
    return [v.strip() for item in values or () for v in str(item).split(",") if v.strip()]


def _number(kind: type, text: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _number(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    value = _number(int, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _number(float, text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def nonnegative_float(text: str) -> float:
    value = _number(float, text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


# argparse names the type function in "invalid <name> value" messages: give them user words
positive_int.__name__ = "positive integer"
nonnegative_int.__name__ = "non-negative integer"
positive_float.__name__ = "positive number"
nonnegative_float.__name__ = "non-negative number"
