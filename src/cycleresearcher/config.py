"""The one strict base of every config dataclass: `from_dict` rejects unknown keys and wrong types.

Configs (ResearchConfig, ReviewConfig, SimPOConfig, CycleConfig, ...) are dataclasses whose fields carry a
`help` text in their metadata (TRL's style). A config may nest another (CycleConfig.research is a
ResearchConfig); `from_dict` builds nested configs from mappings, so a YAML preset or a saved config.yaml
round-trips through `to_dict`/`from_dict`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .io import write_json_atomic

__all__ = ["ConfigError", "StrictConfig"]


def _check_type(cls_name: str, name: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _check_type(cls_name, name, inner[0], value)
        return value
    if isinstance(hint, type) and issubclass(hint, StrictConfig):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{cls_name}.{name} must be a mapping of {hint.__name__} fields, got {value!r}")
        return hint.from_dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{cls_name}.{name} must be one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{cls_name}.{name} must be a list, got {type(value).__name__}")
        return list(value)
    if hint is float:
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{cls_name}.{name} must be a finite number, got {value!r}")
        # An int is a fine float (1 == 1.0); a bool is not a number here.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{cls_name}.{name} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{cls_name}.{name} must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{cls_name}.{name} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{cls_name}.{name} must be a string, got {value!r}")
        return value
    return value


class StrictConfig:
    """Mixin for config dataclasses: `from_dict` rejects unknown keys and type mismatches; `to_dict`, `save`."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}.from_dict needs a mapping, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown keys {unknown}; known keys are {sorted(names)}")
        hints = typing.get_type_hints(cls)
        kwargs = {k: _check_type(cls.__name__, k, hints[k], v) for k, v in data.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def save(self, path: Path) -> None:
        """Write the resolved config as JSON next to an output (atomically)."""
        write_json_atomic(Path(path), self.to_dict(), sort_keys=True)

    @classmethod
    def help(cls) -> dict[str, str]:
        """{field name: help text} for docs and the CLI."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
