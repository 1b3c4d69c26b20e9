"""Options shared by the training configs (the strict base itself is cycleresearcher.config.StrictConfig)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import ConfigError, StrictConfig

__all__ = ["ConfigError", "ModelOptions", "StrictConfig"]


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
