"""SimPO + NLL preference training: the loss as pure functions, and a trainer (TRL's CPOTrainer or our own loop).

    cycleresearcher train simpo --model local --pairs runs/demo/round-00/pairs.jsonl --out /tmp/ckpt
    python -c "from cycleresearcher.train.simpo import train_simpo"  # the library entry point

The two trainers are interchangeable: they tokenise a pair the same way (TRL's CPO scheme: prompt + response
split by re-tokenising the joint text, BOS added when missing, EOS appended, the response cut to `max_length`),
compute the same loss on the same batch (a test holds them to 1e-5), and save a plain transformers checkpoint
that loads as `hf:OUTPUT_DIR`. TRL is used when importable (`use_trl="auto"`); ours needs only torch +
accelerate and also runs under `accelerate launch`. This is the only module that imports `trl.experimental`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Optional

from ..schema import PreferencePair
from .common import (CONFIG_FILE, METRICS_FILE, TrainingError, cpu_process_group_backend, disable_dropout,
                     load_trainable, merge_lora, peak_rss_mb, reset_mixed_precision, save_checkpoint, wrap_lora)
from .simpo_config import SimPOConfig
from .simpo_data import IGNORE_INDEX, build_preference_dataset, collate_pairs, tokenize_pair  # noqa: F401  (public here)

log = logging.getLogger(__name__)


__all__ = ["simpo_loss", "token_logps", "sequence_logps", "build_preference_dataset", "tokenize_pair",
           "collate_pairs", "concatenated_forward", "train_simpo", "trl_available", "load_trainable"]


# --------------------------------------------------------------------------------------------------- the math

def simpo_loss(chosen_logps_avg, rejected_logps_avg, beta: float, gamma: float, nll_loss=None,
               nll_weight: float = 1.0, label_smoothing: float = 0.0):
    """SimPO + lambda * NLL, averaged over the batch.

    Args:
        chosen_logps_avg: (B,) mean token log-probability of each chosen response, log pi(y_w|x) / |y_w|.
        rejected_logps_avg: (B,) the same for the rejected responses.
        beta: reward scale. gamma: target reward margin, in reward units (TRL's `simpo_gamma`).
        nll_loss: () mean negative log-likelihood per chosen token, or None for pure SimPO.
        nll_weight: lambda (TRL's `cpo_alpha`). label_smoothing: eps of conservative SimPO (0 = plain).

    Returns:
        (loss (), chosen_rewards (B,), rejected_rewards (B,)); rewards = beta * avg log-prob, detached.
    """
    import torch.nn.functional as F

    # SimPO, Meng et al. 2024, eq. 6:
    #   L = -log sigmoid( beta/|y_w| log pi(y_w|x) - beta/|y_l| log pi(y_l|x) - gamma )
    # written as beta * (c - r - gamma/beta), exactly TRL's form, so the two agree to rounding.
    # With label smoothing eps the target is flipped with probability eps: - eps * log sigmoid(-z).
    z = beta * ((chosen_logps_avg - rejected_logps_avg) - gamma / beta)
    losses = -F.logsigmoid(z) * (1.0 - label_smoothing) - F.logsigmoid(-z) * label_smoothing
    loss = losses.mean()
    if nll_loss is not None and nll_weight:
        # CPO/CycleResearcher NLL regulariser on the chosen response (TRL: loss + cpo_alpha * nll).
        loss = loss + nll_weight * nll_loss
    chosen_rewards = beta * chosen_logps_avg.detach()
    rejected_rewards = beta * rejected_logps_avg.detach()
    return loss, chosen_rewards, rejected_rewards


def token_logps(logits, labels):
    """Per-token log-probabilities of the next-token labels.

    Args:
        logits: (B, T, V) model outputs; position t predicts token t+1.
        labels: (B, T) token ids, IGNORE_INDEX (-100) where no loss is wanted.

    Returns:
        (logps (B, T-1), mask (B, T-1) float): logps are 0 where the mask is 0.
    """
    import torch

    labels = labels[:, 1:]
    logits = logits[:, :-1, :]
    mask = labels != IGNORE_INDEX
    safe = labels.masked_fill(~mask, 0)
    # log_softmax then gather, without materialising the (B, T, V) log-softmax: gather the logit, subtract the
    # log-normaliser. Row by row keeps the peak memory at one (T, V) temporary.
    rows = []
    for row_logits, row_labels in zip(logits, safe):
        picked = torch.gather(row_logits, -1, row_labels.unsqueeze(-1)).squeeze(-1)
        rows.append(picked - torch.logsumexp(row_logits, dim=-1))
    logps = torch.stack(rows) * mask
    return logps, mask.to(logps.dtype)


def sequence_logps(logits, labels, average: bool = True):
    """(B,) log-probability of each sequence's labelled tokens: the mean per token (SimPO) or the sum.

    Shapes as in `token_logps`; labels are shifted inside (position t of `logits` scores `labels[:, t+1]`).
    """
    logps, mask = token_logps(logits, labels)
    total = logps.sum(-1)
    if not average:
        return total
    return total / mask.sum(-1).clamp(min=1.0)


def _supports_logits_to_keep(model) -> bool:
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base = getattr(base, "module", base)  # DDP wrapper
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


def concatenated_forward(model, batch: dict[str, Any], keep_logits: Optional[bool] = None):
    """(chosen_avg (B,), rejected_avg (B,), nll ()) from one forward pass over chosen + rejected rows.

    nll is the mean negative log-likelihood per chosen response token (TRL's cross-entropy on chosen rows).
    Only the logits of positions that score a response token are computed when the model allows it
    (`logits_to_keep`): the LM head over the prompt is wasted work and, at 49k vocabulary, most of the memory.
    """
    labels = batch["labels"]
    n = batch["n_chosen"]
    kwargs: dict[str, Any] = {}
    if keep_logits is None:
        keep_logits = _supports_logits_to_keep(model)
    width = labels.shape[1]
    if keep_logits:
        first = int((labels != IGNORE_INDEX).float().argmax(-1).min())  # earliest response token in the batch
        keep = width - max(first - 1, 0)
        if keep < width:
            kwargs["logits_to_keep"] = keep
            labels = labels[:, width - keep:]
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False, **kwargs)
    logps, mask = token_logps(out.logits, labels)
    sums, counts = logps.sum(-1), mask.sum(-1)
    avg = sums / counts.clamp(min=1.0)
    nll = -sums[:n].sum() / counts[:n].sum().clamp(min=1.0)
    return avg[:n], avg[n:], nll


# ------------------------------------------------------------------------------------------------ trainers

def _import_cpo():
    """(CPOConfig, CPOTrainer) from TRL; SimPO lives in `trl.experimental.cpo` in the pinned TRL."""
    # We import trl.experimental on purpose (TRL is pinned exactly); its warning would repeat on every call.
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    return CPOConfig, CPOTrainer


def trl_available() -> bool:
    """True when TRL's CPOTrainer (SimPO) can be imported."""
    try:
        _import_cpo()
    except ImportError:
        return False
    return True


def _is_zero3(accelerator) -> bool:
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return plugin is not None and getattr(plugin, "zero_stage", 0) == 3


def _measure_margins(model, encoded: list[dict[str, list[int]]], pad_id: int, cfg: SimPOConfig) -> float:
    """Mean reward margin beta * (c - r) over all pairs, no gradients."""
    import torch

    was_training = model.training
    model.eval()
    margins: list[float] = []
    with torch.no_grad():
        for i in range(0, len(encoded), cfg.batch_size):
            batch = collate_pairs(encoded[i:i + cfg.batch_size], pad_id)
            batch = {k: (v.to(model.device) if hasattr(v, "to") else v) for k, v in batch.items()}
            c, r, _ = concatenated_forward(model, batch)
            margins.extend((cfg.beta * (c - r)).tolist())
    model.train(was_training)
    return sum(margins) / len(margins)


def make_adamw(params, lr: float, weight_decay: float = 0.0):
    """AdamW as the HF Trainer builds it (betas 0.9/0.999, eps 1e-8), with the fused kernel where torch has it."""
    import torch

    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or dtype
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def native_step(acc, model, optimizer, scheduler, params, batch, cfg: SimPOConfig, keep_logits: bool):
    """One forward/backward on `batch` (and the optimizer step when accumulation is complete).

    Returns (loss, mean reward margin), both detached 0-d tensors. Exposed for bench/train_step.py.
    """
    with acc.accumulate(model):
        with acc.autocast():
            c, r, nll = concatenated_forward(model, batch, keep_logits=keep_logits)
            loss, cr, rr = simpo_loss(c, r, cfg.beta, cfg.gamma, nll, cfg.nll_weight, cfg.label_smoothing)
        acc.backward(loss)
        if acc.sync_gradients and cfg.max_grad_norm > 0:
            acc.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()  # a no-op inside accumulation (accelerate's wrapper knows)
        if scheduler is not None and acc.sync_gradients:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return loss.detach(), (cr - rr).mean()


def _run_native(model, tokenizer, encoded: list[dict[str, list[int]]], cfg: SimPOConfig) -> dict[str, Any]:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs
    from transformers import get_scheduler

    backend = cpu_process_group_backend()
    reset_mixed_precision()
    acc = Accelerator(gradient_accumulation_steps=cfg.grad_accumulation,
                      mixed_precision="bf16" if cfg.bf16 else "no",
                      kwargs_handlers=[InitProcessGroupKwargs(backend=backend)] if backend else None)
    pad_id = tokenizer.pad_token_id
    loader = torch.utils.data.DataLoader(
        encoded, batch_size=cfg.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(cfg.seed),
        collate_fn=lambda ex: collate_pairs(ex, pad_id))
    params = [p for p in model.parameters() if p.requires_grad]
    raw_optimizer = make_adamw(params, cfg.lr, cfg.weight_decay)
    model, optimizer, loader = acc.prepare(model, raw_optimizer, loader)
    # Steps from this process's shard of the data (as the HF Trainer counts them); the schedule is stepped by
    # hand once per optimizer step, so it is not handed to accelerate (which would step it once per process).
    per_epoch = math.ceil(len(loader) / cfg.grad_accumulation)
    total = cfg.max_steps if cfg.max_steps > 0 else per_epoch * cfg.epochs
    scheduler = get_scheduler(cfg.lr_scheduler, raw_optimizer, num_warmup_steps=0, num_training_steps=total)
    keep = _supports_logits_to_keep(model)

    losses: list[float] = []
    margins: list[float] = []
    step, micro_losses, micro_margins = 0, [], []
    model.train()
    while step < total:
        for batch in loader:
            loss, margin = native_step(acc, model, optimizer, scheduler, params, batch, cfg, keep)
            micro_losses.append(loss)
            micro_margins.append(margin)
            if acc.sync_gradients:
                step += 1
                # Log the mean over all processes, as TRL does (a no-op on one process).
                logged = acc.reduce(torch.stack([torch.stack(micro_losses).mean(),
                                                 torch.stack(micro_margins).mean()]), reduction="mean")
                losses.append(float(logged[0]))
                margins.append(float(logged[1]))
                micro_losses, micro_margins = [], []
                if step >= total:
                    break
    acc.wait_for_everyone()
    return {"model": acc.unwrap_model(model), "losses": losses, "margins": margins, "steps": step,
            "accelerator": acc, "wrapped": model}


def _run_trl(model, tokenizer, dataset, cfg: SimPOConfig, work_dir: Path) -> dict[str, Any]:
    from transformers.trainer_callback import PrinterCallback

    CPOConfig, CPOTrainer = _import_cpo()

    args = CPOConfig(
        output_dir=str(work_dir), loss_type="simpo", beta=cfg.beta, simpo_gamma=cfg.gamma,
        cpo_alpha=cfg.nll_weight, label_smoothing=cfg.label_smoothing, learning_rate=cfg.lr,
        lr_scheduler_type=cfg.lr_scheduler, warmup_steps=0, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accumulation,
        max_length=cfg.max_length, bf16=cfg.bf16, activation_checkpointing=cfg.activation_checkpointing,
        seed=cfg.seed, report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True,
        remove_unused_columns=False, dataloader_num_workers=0, dataloader_pin_memory=False,
        ddp_backend=cpu_process_group_backend(),
    )
    trainer = CPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout; we return them instead
    trainer.train()
    logs = [e for e in trainer.state.log_history if "loss" in e and "rewards/margins" in e]
    return {"model": trainer.accelerator.unwrap_model(trainer.model_wrapped),
            "losses": [float(e["loss"]) for e in logs],
            "margins": [float(e["rewards/margins"]) for e in logs], "steps": trainer.state.global_step,
            "accelerator": trainer.accelerator, "wrapped": trainer.model_wrapped}


def train_simpo(model_spec: str, pairs: list[PreferencePair], output_dir: Path, config: SimPOConfig | None = None,
                tokenizer_chat: bool = True) -> dict[str, Any]:
    """Train the policy at `model_spec` with SimPO + NLL on `pairs`; save it to `output_dir` (loads as hf:DIR).

    Returns metrics: losses and margins (beta * (chosen - rejected) avg log-prob, per optimizer step),
    mean_margin_start/end (over all pairs, before and after training), steps, seconds, trainer ("trl" or
    "native"), peak_rss_mb, n_pairs. The resolved config and these metrics are saved beside the weights.
    """
    import torch

    cfg = config or SimPOConfig()
    if not pairs:
        raise ValueError("train_simpo needs at least one preference pair; got an empty list")
    use_trl = cfg.use_trl == "always" or (cfg.use_trl == "auto" and trl_available())
    if cfg.use_trl == "always" and not trl_available():
        raise TrainingError("use_trl='always' but trl.experimental.cpo cannot be imported (pip install trl)")
    t0 = time.perf_counter()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    output_dir = Path(output_dir)

    model, tokenizer = load_trainable(model_spec, cfg.dtype)
    dataset = build_preference_dataset(pairs, tokenizer, cfg.max_prompt_length, chat=tokenizer_chat)
    encoded = [tokenize_pair(tokenizer, row["prompt"], row["chosen"], row["rejected"], cfg.max_length)
               for row in dataset]
    if cfg.lora:
        model = wrap_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)
    if cfg.activation_checkpointing:
        if cfg.lora:
            model.enable_input_require_grads()  # checkpointed blocks need a grad-carrying input
        model.gradient_checkpointing_enable()
    disable_dropout(model)

    margin_start = _measure_margins(model, encoded, tokenizer.pad_token_id, cfg) if cfg.eval_margins else None
    log.info("SimPO on %d pairs with %s (%s)", len(pairs), "TRL CPOTrainer" if use_trl else "our loop",
             "LoRA" if cfg.lora else "full")
    if use_trl:
        result = _run_trl(model, tokenizer, dataset, cfg, output_dir.parent / f".{output_dir.name}.trl-work")
    else:
        result = _run_native(model, tokenizer, encoded, cfg)
    if not result["losses"]:
        raise TrainingError("training ran no optimizer step")
    trained = result["model"]
    margin_end = _measure_margins(trained, encoded, tokenizer.pad_token_id, cfg) if cfg.eval_margins else None

    metrics: dict[str, Any] = {
        "trainer": "trl" if use_trl else "native", "losses": result["losses"], "margins": result["margins"],
        "mean_margin_start": margin_start, "mean_margin_end": margin_end, "steps": result["steps"],
        "n_pairs": len(pairs), "lora": cfg.lora, "seconds": 0.0, "peak_rss_mb": 0.0,
    }
    acc = result["accelerator"]
    # ZeRO-3 shards every weight across ranks: gather a full state dict (a collective: all ranks call it).
    state_dict = acc.get_state_dict(result["wrapped"]) if _is_zero3(acc) else None
    plain = merge_lora(trained)
    metrics["seconds"] = round(time.perf_counter() - t0, 3)
    metrics["peak_rss_mb"] = round(peak_rss_mb(), 1)
    metrics["world_size"] = acc.num_processes
    if acc.is_main_process:
        save_checkpoint(plain, tokenizer, output_dir, state_dict=state_dict,
                        extra_json={CONFIG_FILE: cfg.to_dict(), METRICS_FILE: metrics})
    acc.wait_for_everyone()
    if use_trl:
        import shutil

        shutil.rmtree(output_dir.parent / f".{output_dir.name}.trl-work", ignore_errors=True)
    return metrics
