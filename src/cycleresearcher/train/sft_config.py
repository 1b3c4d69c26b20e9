"""SFTConfigLite: the knobs of supervised fine-tuning (TRL SFTTrainer), with units and CPU-safe defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from ._config import ConfigError, ModelOptions

# Learning rates used when `learning_rate` is left unset (per optimizer step, AdamW).
DEFAULT_LR_FULL = 2e-5
DEFAULT_LR_LORA = 2e-4


@dataclass
class SFTConfigLite(ModelOptions):
    """Hyper-parameters of `train_sft` (see `SFTConfigLite.help()` for each field's text)."""

    # On here (TRL's own SFTConfig turns it on by default too): a forward pass keeps ~2.4 GB of activations per
    # 1,000 tokens on the 135M model with LoRA, and one layer's inputs instead cost ~15% more time.
    activation_checkpointing: bool = field(default=True, metadata={
        "help": "Recompute activations in the backward pass: far less memory (train sft --lora --max-steps 2 on "
                "the 135M model: 2.9 GB with it, 4.3 GB without), about 15% slower."})
    learning_rate: Optional[float] = field(default=None, metadata={
        "help": f"AdamW step size. Unset: {DEFAULT_LR_FULL:g} for full fine-tuning, {DEFAULT_LR_LORA:g} with LoRA."})
    lr_scheduler: Literal["constant", "linear", "cosine"] = field(default="linear", metadata={
        "help": "Learning-rate schedule over the optimizer steps (no warm-up)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW decoupled weight decay."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient-norm clip (0 disables clipping)."})
    epochs: int = field(default=1, metadata={"help": "Passes over the data set."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimizer steps (-1: all epochs)."})
    batch_size: int = field(default=2, metadata={
        "help": "Sequences per device per optimizer step (before grad_accumulation); split into forward passes of "
                "micro_batch_size sequences, with the same token-mean loss."})
    micro_batch_size: int = field(default=0, metadata={
        "help": "Sequences per forward pass. 0: 1 on CPU (activation memory grows with every sequence in a forward "
                "pass, ~2.4 GB per 1,000 tokens on the 135M model, and padding only adds work), batch_size on a GPU."})
    grad_accumulation: int = field(default=1, metadata={"help": "Batches of batch_size per optimizer step."})
    max_length: int = field(default=2048, metadata={
        "help": "Maximum tokens per conversation; longer ones keep their start."})
    loss_on: Literal["auto", "assistant", "completion", "all"] = field(default="auto", metadata={
        "help": "Which tokens carry loss: every assistant turn ('assistant'; 'auto' picks it for chat data whose "
                "template allows it), the last assistant turn or the completion ('completion'), or all tokens."})

    def __post_init__(self) -> None:
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        for name in ("epochs", "batch_size", "grad_accumulation", "max_length", "lora_r"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.micro_batch_size < 0 or (self.micro_batch_size and self.batch_size % self.micro_batch_size):
            raise ConfigError(f"micro_batch_size must be 0 (auto) or divide batch_size ({self.batch_size}), "
                              f"got {self.micro_batch_size}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"max_steps must be -1 (no limit) or >= 1, got {self.max_steps}")
        if self.loss_on not in ("auto", "assistant", "completion", "all"):
            raise ConfigError(f"loss_on must be auto, assistant, completion or all, got {self.loss_on!r}")

    def micro_batch(self, cuda: bool) -> int:
        """Sequences per forward pass in force (see micro_batch_size)."""
        return self.micro_batch_size or (self.batch_size if cuda else 1)

    @property
    def lr(self) -> float:
        """The learning rate in force: the set one, or the CPU default for full / LoRA training."""
        if self.learning_rate is not None:
            return self.learning_rate
        return DEFAULT_LR_LORA if self.lora else DEFAULT_LR_FULL
