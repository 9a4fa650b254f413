"""Model options from the command line: `name=value` text → `PatchCoreConfig` fields.

Values are parsed by the dataclass field's declared type (int, float, bool, str, `X | None`),
read from the dataclass itself, so fields added to the config later work without a change here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from anomalia.core.config import PatchCoreConfig

_TRUE, _FALSE, _NONE = ("true", "yes", "1", "on"), ("false", "no", "0", "off"), ("none", "null")


class OptionError(ValueError):
    """A `name=value` option that names no config field or whose value does not parse."""


def config_fields() -> dict[str, str]:
    """Field name → its declared type as text (e.g. ``"int"``, ``"str | None"``)."""
    return {f.name: f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            for f in dataclasses.fields(PatchCoreConfig)}


def parse_value(name: str, text: str) -> object:
    """`text` as the type of config field `name`; errors say what was expected."""
    fields = config_fields()
    if name not in fields:
        raise OptionError(f"unknown option {name!r}; PatchCoreConfig fields are: {', '.join(fields)}")
    kinds = {part.strip() for part in fields[name].split("|")}
    lowered = text.strip().lower()
    if "None" in kinds and lowered in _NONE:
        return None
    if "bool" in kinds:
        if lowered in _TRUE + _FALSE:
            return lowered in _TRUE
        raise OptionError(f"{name} expects true or false, got {text!r}")
    for kind, convert in (("int", int), ("float", float)):
        if kind in kinds:
            try:
                return convert(text)
            except ValueError:
                raise OptionError(f"{name} expects {'an' if kind == 'int' else 'a'} {kind}, got {text!r}") from None
    return text


def parse_assignment(text: str) -> tuple[str, object]:
    """``"knn_k=3"`` → ``("knn_k", 3)``."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise OptionError(f"expected name=value, got {text!r}")
    return name.strip(), parse_value(name.strip(), value.strip())


def parse_assignments(items: Iterable[str]) -> dict[str, object]:
    """Several ``name=value`` items; a later one wins."""
    return dict(parse_assignment(item) for item in items)


def parse_variant(text: str) -> tuple[str, dict[str, object]]:
    """``"NAME=a=1,b=x"`` → ``("NAME", {"a": 1, "b": "x"})``; ``"NAME="`` keeps the base options."""
    name, sep, options = text.partition("=")
    if not sep or not name.strip():
        raise OptionError(f"expected NAME=name=value,..., got {text!r}")
    items = [item for item in options.split(",") if item.strip()]
    return name.strip(), parse_assignments(items)


def make_config(options: dict[str, object]) -> PatchCoreConfig:
    """A validated config from parsed options (field names already checked)."""
    try:
        return PatchCoreConfig(**options).validate()  # type: ignore[arg-type]
    except ValueError as error:
        raise OptionError(str(error)) from error
