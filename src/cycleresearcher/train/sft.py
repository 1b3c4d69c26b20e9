"""Supervised fine-tuning of the researcher or the reviewer with TRL's SFTTrainer, full or LoRA.

    cycleresearcher train sft --model local --data data/research --out ckpt/researcher-sft --max-steps 20
    cycleresearcher train sft --model local --data data/review --out ckpt/reviewer-sft --lora

Input is a Hugging Face Dataset with a `messages` column (the Research and Review data sets both have one: a
list of {role, content}), or `prompt_messages` + `target`, or `prompt` + `completion`. Loss falls on the
assistant turns only: we mark them ourselves by rendering the chat template on growing prefixes of each
conversation (exact for any prefix-preserving template, such as ChatML, with no `{% generation %}` markers
needed); a conversation whose template is not prefix-preserving trains on its last assistant turn instead
(TRL's completion-only loss). The checkpoint is a plain transformers folder that loads as `hf:OUTPUT_DIR`.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from pathlib import Path
from typing import Any

from .common import (CONFIG_FILE, METRICS_FILE, TrainingError, load_trainable, merge_lora, peak_rss_mb,
                     reset_mixed_precision, save_checkpoint, wrap_lora)
from .sft_config import SFTConfigLite

log = logging.getLogger(__name__)

__all__ = ["train_sft", "to_messages_dataset", "assistant_mask", "prepare_sft_dataset"]


def _check_messages(messages: Any, row: int) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"row {row}: messages must be a non-empty list of {{role, content}}, got {messages!r:.80}")
    out = []
    for m in messages:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"row {row}: each message needs 'role' and 'content', got {m!r:.80}")
        out.append({"role": str(m["role"]), "content": str(m["content"])})
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError(f"row {row}: the conversation has no assistant turn, so nothing to learn")
    return out


def to_messages_dataset(dataset):
    """A Dataset with one column, `messages`, from any of the accepted layouts.

    Accepted: `messages` (Research and Review data sets), `prompt_messages` + `target` (the prompt chat plus the
    target as the assistant turn), or conversational `prompt` + `completion` lists. String `prompt` +
    `completion` columns are returned unchanged (TRL trains on the completion).
    """
    from datasets import Dataset

    cols = set(dataset.column_names)
    if "messages" in cols:
        rows = [_check_messages(m, i) for i, m in enumerate(dataset["messages"])]
    elif {"prompt_messages", "target"} <= cols:
        rows = [_check_messages(list(p) + [{"role": "assistant", "content": t}], i)
                for i, (p, t) in enumerate(zip(dataset["prompt_messages"], dataset["target"]))]
    elif {"prompt", "completion"} <= cols:
        first = dataset[0]
        if isinstance(first["prompt"], str):
            return dataset.select_columns(["prompt", "completion"])
        rows = [_check_messages(list(p) + list(c), i)
                for i, (p, c) in enumerate(zip(dataset["prompt"], dataset["completion"]))]
    else:
        raise ValueError(f"cannot train on columns {sorted(cols)}: need `messages`, `prompt_messages` + `target`, "
                         "or `prompt` + `completion`")
    return Dataset.from_dict({"messages": rows})


def assistant_mask(tokenizer, messages: list[dict[str, str]]) -> tuple[list[int], list[int]] | None:
    """(input_ids, mask) with mask 1 on the tokens of every assistant turn (its end-of-turn token included).

    The spans come from rendering the template on prefixes: turn i starts where `messages[:i]` with the
    generation prompt ends and stops where `messages[:i+1]` ends. Returns None when the template is not
    prefix-preserving for this conversation (a prefix renders differently from the start of the whole).
    """
    def render(msgs, gen=False):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)

    full = render(messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        head, upto = render(messages[:i], gen=True) if i else "", render(messages[:i + 1])
        if not (full.startswith(upto) and upto.startswith(head)):
            return None
        spans.append((len(head), len(upto)))
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    # A token is trained when its character span [a, b) overlaps an assistant span [s, e).
    mask = [int(any(a < e and b > s for s, e in spans)) for a, b in enc["offset_mapping"]]
    return list(enc["input_ids"]), mask


def prepare_sft_dataset(dataset, tokenizer, loss_on: str = "auto"):
    """(dataset ready for SFTTrainer, the loss mode used: "assistant" | "completion" | "all")."""
    from datasets import Dataset

    data = to_messages_dataset(dataset)
    if "messages" not in data.column_names:
        return data, "completion"
    if loss_on == "all":
        return data, "all"
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat data needs a tokenizer with a chat template; this model has none")
    if loss_on in ("auto", "assistant"):
        ids, masks = [], []
        for messages in data["messages"]:
            got = assistant_mask(tokenizer, messages)
            if got is None:
                break
            ids.append(got[0])
            masks.append(got[1])
        else:
            return Dataset.from_dict({"input_ids": ids, "assistant_masks": masks}), "assistant"
        if loss_on == "assistant":
            raise ValueError("the chat template is not prefix-preserving, so assistant turns cannot be masked; "
                             "use loss_on='completion' (last assistant turn) or 'all'")
        log.warning("chat template is not prefix-preserving: training on the last assistant turn only")
    # Completion-only: everything before the last assistant turn is the prompt.
    prompts, completions = [], []
    for messages in data["messages"]:
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        prompts.append(messages[:last])
        completions.append(messages[last:last + 1])
    return Dataset.from_dict({"prompt": prompts, "completion": completions}), "completion"


def train_sft(model_spec: str, dataset, output_dir: Path, config: SFTConfigLite | None = None) -> dict[str, Any]:
    """Fine-tune `model_spec` on `dataset`; save the model + tokenizer to `output_dir` (loads as hf:DIR).

    Returns metrics: losses (per optimizer step), steps, seconds, loss_on (the masking used), n_examples,
    peak_rss_mb. The resolved config and these metrics are saved beside the weights.
    """
    import torch
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    cfg = config or SFTConfigLite()
    if dataset is None or len(dataset) == 0:
        raise ValueError("train_sft needs at least one training example; the data set is empty")
    t0 = time.perf_counter()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    output_dir = Path(output_dir)
    model, tokenizer = load_trainable(model_spec, cfg.dtype)
    train_data, loss_on = prepare_sft_dataset(dataset, tokenizer, cfg.loss_on)
    if cfg.lora:
        model = wrap_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)

    work = output_dir.parent / f".{output_dir.name}.sft-work"
    # A batch goes through the model `micro` sequences at a time (gradient accumulation; TRL divides every
    # micro-batch's summed token loss by the tokens of the whole step, so the gradient is the batch's token
    # mean as before). On a CPU one sequence per pass keeps activations to one sequence's worth: `train sft
    # --lora --max-steps 2` on the 135M model peaked at 7.9 GB with two padded sequences per pass, 2.9 GB with one.
    micro = cfg.micro_batch(torch.cuda.is_available())
    args = SFTConfig(
        output_dir=str(work), learning_rate=cfg.lr, lr_scheduler_type=cfg.lr_scheduler, warmup_steps=0,
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, per_device_train_batch_size=micro,
        gradient_accumulation_steps=cfg.grad_accumulation * (cfg.batch_size // micro), max_length=cfg.max_length,
        bf16=cfg.bf16, use_cpu=not torch.cuda.is_available(),  # bf16 autocast on a CPU needs use_cpu said
        activation_checkpointing=cfg.activation_checkpointing, seed=cfg.seed, report_to=[], save_strategy="no",
        logging_steps=1, disable_tqdm=True, dataloader_pin_memory=False, packing=False,
    )
    reset_mixed_precision()
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_data, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # it prints every log dict; we return them instead
    log.info("SFT on %d examples (%s loss, %s)", len(train_data), loss_on, "LoRA" if cfg.lora else "full")
    trainer.train()
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e and "train_loss" not in e]
    if not losses:
        raise TrainingError("SFT ran no optimizer step")
    acc = trainer.accelerator
    plugin = getattr(acc.state, "deepspeed_plugin", None)
    state_dict = acc.get_state_dict(trainer.model_wrapped) if getattr(plugin, "zero_stage", 0) == 3 else None
    plain = merge_lora(acc.unwrap_model(trainer.model_wrapped))
    metrics: dict[str, Any] = {
        "trainer": "trl", "losses": losses, "steps": trainer.state.global_step, "loss_on": loss_on,
        "n_examples": len(train_data), "lora": cfg.lora, "world_size": acc.num_processes, "micro_batch": micro,
        "seconds": round(time.perf_counter() - t0, 3), "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if acc.is_main_process:
        save_checkpoint(plain, tokenizer, output_dir, state_dict=state_dict,
                        extra_json={CONFIG_FILE: cfg.to_dict(), METRICS_FILE: metrics})
        shutil.rmtree(work, ignore_errors=True)
    acc.wait_for_everyone()
    return metrics
