"""Median SimPO + NLL step time: our trainer's step vs TRL's CPOTrainer step, same model, same batch, same run.

    .venv/bin/python bench/train_step.py                  # a 4-layer Llama built here (seconds)
    .venv/bin/python bench/train_step.py --model local    # the embedded SmolLM2-135M (minutes on a laptop)

A step is forward over chosen + rejected, loss, backward, gradient clipping, AdamW update: for TRL,
`trainer.training_step` plus the optimizer/scheduler calls of the Trainer loop; for us, `native_step`, the body
of our loop. Both start from identical weights and take turns step by step, so drift in machine load hits both
alike. Target: ours <= 1.05 x TRL. Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tiny_model.build_tiny_model: a Llama + tokenizer built offline

PROMPT = ("You write papers. Topic: graph neural networks for molecules. References: "
          "We propose a new method for graph neural networks and evaluate it on standard benchmarks. ") * 3
CHOSEN = ("We propose a new method for graph neural networks and evaluate it on standard benchmarks. "
          "The results show that our approach improves accuracy by 3 points over the baseline. ") * 2
REJECTED = "Strengths: clear writing. Weaknesses: limited experiments. Questions: how does it scale? " * 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="", help="model spec (default: a 4-layer Llama built here)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per trainer")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per trainer")
    parser.add_argument("--pairs", type=int, default=4, help="pairs per batch")
    args = parser.parse_args()

    import logging
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.disable(logging.WARNING)
    import torch
    from accelerate import Accelerator

    from cycleresearcher.schema import PreferencePair
    from cycleresearcher.train.common import disable_dropout, load_trainable
    from cycleresearcher.train.simpo import (_import_cpo, _supports_logits_to_keep, build_preference_dataset,
                                             collate_pairs, make_adamw, native_step,
                                             tokenize_pair)
    from cycleresearcher.train.simpo_config import SimPOConfig

    spec = args.model
    if not spec:
        from tiny_model import build_tiny_model

        spec = str(build_tiny_model(Path(tempfile.mkdtemp(prefix="bench-llama-")), layers=4, hidden=256,
                                    vocab_size=2048))
    cfg = SimPOConfig(learning_rate=1e-5, max_length=512, max_prompt_length=256, batch_size=args.pairs)
    base, tok = load_trainable(spec)
    disable_dropout(base)
    pairs = [PreferencePair(prompt_id=str(i), prompt=[{"role": "user", "content": f"{i} {PROMPT}"}],
                            chosen=CHOSEN, rejected=REJECTED, chosen_score=6, rejected_score=3)
             for i in range(args.pairs)]
    data = build_preference_dataset(pairs, tok, cfg.max_prompt_length)

    # TRL: CPOTrainer with loss_type="simpo", its own tokenisation and collator, its training_step.
    CPOConfig, CPOTrainer = _import_cpo()
    trl_model = copy.deepcopy(base)
    targs = CPOConfig(output_dir=tempfile.mkdtemp(prefix="bench-trl-"), loss_type="simpo", beta=cfg.beta,
                      simpo_gamma=cfg.gamma, cpo_alpha=cfg.nll_weight, learning_rate=cfg.lr, max_length=cfg.max_length,
                      per_device_train_batch_size=args.pairs, bf16=False, report_to=[], save_strategy="no",
                      lr_scheduler_type="constant", activation_checkpointing=False, remove_unused_columns=False,
                      dataloader_pin_memory=False, disable_tqdm=True)
    trainer = CPOTrainer(model=trl_model, args=targs, train_dataset=data, processing_class=tok)
    trainer.create_optimizer_and_scheduler(num_training_steps=args.steps + args.warmup)
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train() in the real loop
    trl_batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(data))])

    def trl_step():
        loss = trainer.training_step(trainer.model, trl_batch)  # compute_loss + backward
        trainer.accelerator.clip_grad_norm_(trainer.model.parameters(), targs.max_grad_norm)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        trainer.model.zero_grad()
        return float(loss)

    # Ours: the same weights, the same rows, the body of our training loop.
    our_model = copy.deepcopy(base)
    acc = Accelerator()
    params = [p for p in our_model.parameters() if p.requires_grad]
    optimizer = make_adamw(params, cfg.lr)
    our_model, optimizer = acc.prepare(our_model, optimizer)
    our_batch = collate_pairs([tokenize_pair(tok, r["prompt"], r["chosen"], r["rejected"], cfg.max_length)
                               for r in data], tok.pad_token_id)
    assert torch.equal(our_batch["input_ids"][: args.pairs, :trl_batch["chosen_input_ids"].shape[1]],
                       trl_batch["chosen_input_ids"]), "the two trainers must see the same tokens"
    keep = _supports_logits_to_keep(our_model)

    def our_step():
        loss, _ = native_step(acc, our_model, optimizer, None, params, our_batch, cfg, keep)
        return float(loss)

    first_trl, first_ours = trl_step(), our_step()
    for _ in range(args.warmup - 1):
        trl_step(), our_step()
    times = {"trl": [], "ours": []}
    for i in range(args.steps):
        order = (("trl", trl_step), ("ours", our_step)) if i % 2 == 0 else (("ours", our_step), ("trl", trl_step))
        for name, fn in order:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)

    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}  # least disturbed by other load on a shared machine
    result = {
        "model": args.model or "llama-4L-256H (built)", "params_m": round(sum(p.numel() for p in base.parameters()) / 1e6, 1),
        "seqs_per_step": 2 * args.pairs, "tokens_per_step": int(our_batch["attention_mask"].sum()),
        "first_loss_trl": round(first_trl, 6), "first_loss_ours": round(first_ours, 6),
        "median_s_trl": round(med["trl"], 4), "median_s_ours": round(med["ours"], 4),
        "ratio_ours_over_trl": round(med["ours"] / med["trl"], 3), "steps": args.steps,
        "min_s_trl": round(best["trl"], 4), "min_s_ours": round(best["ours"], 4),
        "min_ratio_ours_over_trl": round(best["ours"] / best["trl"], 3),
        "torch_threads": torch.get_num_threads(),
    }
    print(f"TRL CPOTrainer step: {med['trl'] * 1000:.1f} ms (median of {args.steps})")
    print(f"our SimPO step:      {med['ours'] * 1000:.1f} ms (median of {args.steps})")
    print(f"ratio ours/TRL:      {result['ratio_ours_over_trl']:.3f}  (target <= 1.05)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
