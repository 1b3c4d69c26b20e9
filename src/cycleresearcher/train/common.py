"""What the SFT and SimPO trainers share: a fresh trainable model, LoRA wrapping, and an atomic checkpoint save."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..backends.base import BackendError
from ..errors import StepError
from ..io import peak_rss_mb, write_json_atomic  # noqa: F401  (re-exported for the trainers)
from ..backends.loader import forget_gguf_quantization, resolve_model_path

log = logging.getLogger(__name__)

# Files written beside the weights so a checkpoint says how it was made.
CONFIG_FILE = "train_config.json"
METRICS_FILE = "train_metrics.json"


class TrainingError(StepError):
    """Training could not run or produced nothing usable (not a bad-input error: those are InputError)."""


def strip_spec(spec: str) -> str:
    """`hf:PATH` -> `PATH` (the backend registry's prefix); anything else unchanged."""
    return spec[3:] if spec.startswith("hf:") else spec


def load_trainable(spec: str, dtype: str = "float32"):
    """(model, tokenizer): a FRESH copy for training, never the process-wide cached eval model.

    `spec` is "local" (the embedded SmolLM2 GGUF, dequantised to `dtype`), a model folder, a .gguf file, or
    `hf:FOLDER`. Nothing is downloaded.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf = resolve_model_path(strip_spec(spec))
    kwargs: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=getattr(torch, dtype),
                                                     **kwargs)
    except (OSError, ValueError) as exc:
        raise BackendError(f"could not load a trainable model from {folder}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if gguf:
        forget_gguf_quantization(model)
    model.config.use_cache = False  # the KV cache is useless in training and costs memory
    model.train()
    return model, tokenizer


def wrap_lora(model, r: int, alpha: int, dropout: float, target_modules: str):
    """The model with LoRA adapters on `target_modules` ("all-linear" or "q_proj,v_proj,...")."""
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = target_modules
    if target_modules != "all-linear":
        targets = [t.strip() for t in target_modules.split(",") if t.strip()]
        if not targets:
            raise ValueError("lora_target_modules is empty")
    config = LoraConfig(task_type="CAUSAL_LM", r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=targets)
    return get_peft_model(model, config)


def merge_lora(model):
    """A plain transformers model: LoRA weights folded in (no-op for a model without adapters)."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model


def disable_dropout(model) -> None:
    """Zero every dropout probability: preference losses compare two forward passes, noise only hurts."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def save_checkpoint(model, tokenizer, output_dir: Path, extra_json: dict[str, Any] | None = None,
                    state_dict: dict | None = None) -> Path:
    """Write model (safetensors) + tokenizer + JSON side files to `output_dir`, atomically.

    Everything goes to a staging folder beside `output_dir` first, then one rename swaps it in, so a crash never
    leaves a half-written checkpoint where a later round would load it.
    """
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        model.save_pretrained(staging, state_dict=state_dict)
        tokenizer.save_pretrained(staging)
        for name, obj in (extra_json or {}).items():
            write_json_atomic(staging / name, obj, sort_keys=True)
        if output_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
            os.replace(output_dir, old / "previous")
            os.replace(staging, output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, output_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("saved checkpoint to %s", output_dir)
    return output_dir


def cpu_process_group_backend() -> str | None:
    """"gloo" when this is one of several processes on a machine without CUDA, else None (the default).

    accelerate leaves the backend unset on CPU unless ACCELERATE_USE_CPU is set, and then counts one process,
    which breaks DeepSpeed's batch-size check; naming gloo makes every launcher agree on the world size.
    """
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        return "gloo"
    return None


def reset_mixed_precision() -> None:
    """Let the next Accelerator (ours or a TRL trainer's) choose its own mixed precision.

    accelerate keeps one process-wide AcceleratorState and refuses a second Accelerator with another
    `mixed_precision`; the cycle trains several times in one process (a float32 warm start, then bf16 SimPO
    rounds). Only the precision state is reset: the process group (PartialState) is kept."""
    try:
        from accelerate.state import AcceleratorState
    except ImportError:
        return
    if getattr(AcceleratorState, "_shared_state", None):
        AcceleratorState._reset_state(reset_partial_state=False)
