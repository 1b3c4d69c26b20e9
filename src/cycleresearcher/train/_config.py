"""Shared behaviour of the training configs: strict dict round trip (unknown keys and wrong types are errors)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal


class ConfigError(ValueError):
    """A training config has an unknown key, a value of the wrong type, or a value out of range."""


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
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{cls_name}.{name} must be one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{cls_name}.{name} must be a list, got {type(value).__name__}")
        return list(value)
    if hint is float:
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
        """Write the resolved config as JSON next to a training output."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)

    @classmethod
    def help(cls) -> dict[str, str]:
        """{field name: help text} for docs and the CLI."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


@dataclass
class ModelOptions(StrictConfig):
    """How the trained model is loaded and adapted; shared by the SFT and SimPO configs (their first fields)."""

    lora: bool = field(default=False, metadata={
        "help": "Train LoRA adapters (peft) instead of all weights; they are merged before saving."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: str = field(default="all-linear", metadata={
        "help": "Modules that get adapters: 'all-linear' or a comma-separated list such as 'q_proj,v_proj'."})
    seed: int = field(default=0, metadata={"help": "Seed for data order, LoRA init and dropout."})
    activation_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass: less memory, about 20-30% slower."})
    bf16: bool = field(default=False, metadata={
        "help": "bfloat16 mixed precision (GPUs with bf16 support; keep False on CPU)."})
    dtype: Literal["float32", "bfloat16", "float16"] = field(default="float32", metadata={
        "help": "dtype the weights are loaded in (GGUF weights are dequantised to it)."})
