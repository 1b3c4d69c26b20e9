"""SimPOConfig: every knob of SimPO + NLL preference training, with units and CPU-safe defaults.

Defaults follow the SimPO paper (Meng et al. 2024: beta 2.0-2.5, gamma/beta about 0.5) and the CycleResearcher
recipe (keep the NLL term on: without it the policy degenerates into repetitive text), scaled to a laptop CPU:
float32, no bf16, a learning rate large enough to move a 135M model in a few steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from ._config import ConfigError, ModelOptions

# Learning rates used when `learning_rate` is left unset (per optimizer step, AdamW).
DEFAULT_LR_FULL = 1e-5
DEFAULT_LR_LORA = 1e-4


@dataclass
class SimPOConfig(ModelOptions):
    """Hyper-parameters of `train_simpo` (see `SimPOConfig.help()` for each field's text)."""

    beta: float = field(default=2.0, metadata={
        "help": "Reward scale: reward = beta * mean token log-prob of a response (SimPO paper: 2.0-2.5)."})
    gamma_beta_ratio: float = field(default=0.5, metadata={
        "help": "Target reward margin gamma divided by beta (SimPO paper: about 0.5); gamma = beta * ratio."})
    nll_weight: float = field(default=1.0, metadata={
        "help": "Weight lambda of the NLL loss on the chosen response (TRL's cpo_alpha). 0 turns it off; "
                "CycleResearcher keeps it on because pure SimPO degenerates into repetitive text."})
    label_smoothing: float = field(default=0.0, metadata={
        "help": "Probability that a preference label is flipped (conservative SimPO); 0 is plain SimPO."})
    learning_rate: Optional[float] = field(default=None, metadata={
        "help": f"AdamW step size. Unset: {DEFAULT_LR_FULL:g} for full fine-tuning, {DEFAULT_LR_LORA:g} with LoRA "
                "(CPU defaults that move a 135M model; the paper used 5e-7 at 12B scale)."})
    lr_scheduler: Literal["constant", "linear"] = field(default="constant", metadata={
        "help": "Learning-rate schedule over the optimizer steps: constant, or linear decay to 0."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW decoupled weight decay."})
    max_grad_norm: float = field(default=1.0, metadata={
        "help": "Clip the global gradient norm to this value before each step (0 disables clipping)."})
    epochs: int = field(default=1, metadata={"help": "Passes over the preference pairs."})
    max_steps: int = field(default=-1, metadata={
        "help": "Stop after this many optimizer steps (-1: run the full epochs)."})
    batch_size: int = field(default=2, metadata={
        "help": "Preference pairs per device per forward pass (each pair is two sequences)."})
    grad_accumulation: int = field(default=1, metadata={
        "help": "Forward passes accumulated per optimizer step (effective batch = batch_size * this * devices)."})
    max_length: int = field(default=1024, metadata={
        "help": "Maximum tokens of prompt + response; responses are cut to fit, as TRL does."})
    max_prompt_length: int = field(default=512, metadata={
        "help": "Maximum prompt tokens; longer prompts keep their last tokens (the end holds the instruction)."})
    use_trl: Literal["auto", "always", "never"] = field(default="auto", metadata={
        "help": "Trainer: TRL's CPOTrainer (loss_type='simpo') when importable ('auto'), always, or never "
                "(our own loop with the same loss and tokenisation)."})
    eval_margins: bool = field(default=True, metadata={
        "help": "Measure the mean reward margin over all pairs before and after training (two no-grad passes)."})

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ConfigError(f"beta must be > 0, got {self.beta}")
        if self.gamma_beta_ratio < 0:
            raise ConfigError(f"gamma_beta_ratio must be >= 0, got {self.gamma_beta_ratio}")
        if self.nll_weight < 0:
            raise ConfigError(f"nll_weight must be >= 0, got {self.nll_weight}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        for name in ("epochs", "batch_size", "grad_accumulation", "max_length", "max_prompt_length", "lora_r"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"max_steps must be -1 (no limit) or >= 1, got {self.max_steps}")
        if self.max_prompt_length >= self.max_length:
            raise ConfigError(f"max_prompt_length ({self.max_prompt_length}) must be below max_length "
                              f"({self.max_length}) so the response keeps some tokens")
        if self.use_trl not in ("auto", "always", "never"):
            raise ConfigError(f"use_trl must be auto, always or never, got {self.use_trl!r}")
        if self.lr_scheduler not in ("constant", "linear"):
            raise ConfigError(f"lr_scheduler must be constant or linear, got {self.lr_scheduler!r}")

    @property
    def gamma(self) -> float:
        """Target reward margin gamma (in reward units, i.e. already multiplied by beta)."""
        return self.beta * self.gamma_beta_ratio

    @property
    def lr(self) -> float:
        """The learning rate in force: the set one, or the CPU default for full / LoRA training."""
        if self.learning_rate is not None:
            return self.learning_rate
        return DEFAULT_LR_LORA if self.lora else DEFAULT_LR_FULL
