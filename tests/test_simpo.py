"""SimPO + NLL: the loss against hand-computed numbers, our trainer against TRL's on the same batch, training runs."""

import json
import math

import pytest

from cycleresearcher.schema import PreferencePair
from cycleresearcher.train._config import ConfigError
from cycleresearcher.train.simpo_config import SimPOConfig

LN2 = math.log(2.0)
SOFTPLUS3 = math.log1p(math.exp(3.0))  # -log sigmoid(-3)
SOFTPLUS_NEG3 = math.log1p(math.exp(-3.0))  # -log sigmoid(3)


def _pairs(n=4):
    # Messy on purpose: unicode, trailing spaces, a newline at the boundary, different lengths (padding).
    texts = [
        ("We propose a new method for graph neural networks.", "The results show results results."),
        ("## Summary\nThe paper studies reinforcement learning.  ", "ok"),
        ("Strengths: clear writing — and a proof.", "Weaknesses: limited experiments. Questions: how does it scale?"),
        ("\\title{A Study}\n\\begin{abstract}We study models.\\end{abstract}", "```json\n[]\n```"),
    ]
    return [PreferencePair(prompt_id=f"p{i}",
                           prompt=[{"role": "system", "content": "You write papers."},
                                   {"role": "user", "content": f"Topic {i}: graph neural networks\n"}],
                           chosen=texts[i % 4][0], rejected=texts[i % 4][1], chosen_score=6.0, rejected_score=3.0)
            for i in range(n)]


# ------------------------------------------------------------------------------------------- pure math

def test_simpo_loss_matches_hand_computation():
    import torch

    from cycleresearcher.train.simpo import simpo_loss

    c = torch.tensor([-1.0, -2.0])
    r = torch.tensor([-1.5, -1.0])
    # beta=2, gamma=1: z = 2 * ((c - r) - 0.5) = [0, -3]; losses = [ln 2, ln(1 + e^3)].
    loss, cr, rr = simpo_loss(c, r, beta=2.0, gamma=1.0)
    assert loss.item() == pytest.approx((LN2 + SOFTPLUS3) / 2, abs=1e-6)
    assert cr.tolist() == [-2.0, -4.0] and rr.tolist() == [-3.0, -2.0]
    # + lambda * NLL
    loss, _, _ = simpo_loss(c, r, beta=2.0, gamma=1.0, nll_loss=torch.tensor(0.5), nll_weight=0.4)
    assert loss.item() == pytest.approx((LN2 + SOFTPLUS3) / 2 + 0.2, abs=1e-6)
    # label smoothing 0.1: row 2 becomes 0.9 * ln(1+e^3) + 0.1 * ln(1+e^-3); row 1 stays ln 2.
    loss, _, _ = simpo_loss(c, r, beta=2.0, gamma=1.0, label_smoothing=0.1)
    assert loss.item() == pytest.approx((LN2 + 0.9 * SOFTPLUS3 + 0.1 * SOFTPLUS_NEG3) / 2, abs=1e-6)
    # nll_weight 0 ignores the NLL term.
    loss0, _, _ = simpo_loss(c, r, beta=2.0, gamma=1.0, nll_loss=torch.tensor(9.0), nll_weight=0.0)
    assert loss0.item() == pytest.approx((LN2 + SOFTPLUS3) / 2, abs=1e-6)


def test_sequence_logps_shift_and_mask_by_hand():
    import torch

    from cycleresearcher.train.simpo import sequence_logps

    # Position 0 logits [0, 0]: p = 1/2 each; position 1 logits [ln 3, 0]: p = 3/4, 1/4; position 2 unused.
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[-100, 0, 1]])  # position 0 scores token 0, position 1 scores token 1
    assert sequence_logps(logits, labels, average=False).item() == pytest.approx(math.log(0.5 * 0.25), abs=1e-6)
    assert sequence_logps(logits, labels).item() == pytest.approx(math.log(0.5 * 0.25) / 2, abs=1e-6)
    masked = torch.tensor([[-100, -100, 1]])
    assert sequence_logps(logits, masked).item() == pytest.approx(math.log(0.25), abs=1e-6)


# ------------------------------------------------------------------------------------------- config

def test_config_rejects_unknown_keys_and_bad_types():
    with pytest.raises(ConfigError, match="unknown keys.*lamda"):
        SimPOConfig.from_dict({"beta": 2.0, "lamda": 1.0})
    with pytest.raises(ConfigError, match="beta must be a number"):
        SimPOConfig.from_dict({"beta": "2"})
    with pytest.raises(ConfigError, match="use_trl"):
        SimPOConfig.from_dict({"use_trl": "sometimes"})
    with pytest.raises(ConfigError, match="max_prompt_length"):
        SimPOConfig(max_length=128, max_prompt_length=128)
    cfg = SimPOConfig.from_dict({"beta": 2.5, "gamma_beta_ratio": 0.4, "epochs": 2, "lora": True})
    assert cfg.gamma == pytest.approx(1.0)
    assert cfg.lr == 1e-4  # LoRA default
    assert SimPOConfig().lr == 1e-5 and SimPOConfig().nll_weight == 1.0 and SimPOConfig().bf16 is False
    assert SimPOConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert all(SimPOConfig.help().values()), "every field has help text"


def test_empty_pairs_is_a_clear_error(tiny_model_dir, tmp_path):
    from cycleresearcher.train.simpo import train_simpo

    with pytest.raises(ValueError, match="at least one preference pair"):
        train_simpo(str(tiny_model_dir), [], tmp_path / "out", SimPOConfig())


# ------------------------------------------------------------------------------------------- ours vs TRL

def test_our_loss_equals_trl_cpo_loss_on_the_same_batch(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cycleresearcher.train.simpo import (_import_cpo, build_preference_dataset, collate_pairs,
                                             concatenated_forward, simpo_loss, tokenize_pair)

    CPOConfig, CPOTrainer = _import_cpo()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cfg = SimPOConfig(beta=2.5, gamma_beta_ratio=0.3, nll_weight=0.7, label_smoothing=0.1, max_length=56,
                      max_prompt_length=50)
    data = build_preference_dataset(_pairs(), tok, cfg.max_prompt_length)
    args = CPOConfig(output_dir=str(tmp_path / "trl"), loss_type="simpo", beta=cfg.beta, simpo_gamma=cfg.gamma,
                     cpo_alpha=cfg.nll_weight, label_smoothing=cfg.label_smoothing, max_length=cfg.max_length,
                     bf16=False, report_to=[], per_device_train_batch_size=4, remove_unused_columns=False,
                     activation_checkpointing=False, dataloader_pin_memory=False)
    trainer = CPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    rows = [trainer.train_dataset[i] for i in range(len(data))]

    ours = [tokenize_pair(tok, r["prompt"], r["chosen"], r["rejected"], cfg.max_length) for r in data]
    for mine, theirs in zip(ours, rows):  # same token ids and labels as TRL's CPO tokenisation
        for key in ("chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels"):
            assert mine[key] == theirs[key], key
    assert any(len(o["chosen_input_ids"]) == cfg.max_length for o in ours), "truncation is exercised"

    model.eval()
    with torch.no_grad():
        trl_loss, metrics = trainer.get_batch_loss_metrics(model, trainer.data_collator(rows))
        batch = collate_pairs(ours, tok.pad_token_id)
        for keep in (False, True):
            c, r, nll = concatenated_forward(model, batch, keep_logits=keep)
            loss, cr, rr = simpo_loss(c, r, cfg.beta, cfg.gamma, nll, cfg.nll_weight, cfg.label_smoothing)
            assert loss.item() == pytest.approx(trl_loss.item(), abs=1e-5)
            assert nll.item() == pytest.approx(metrics["nll_loss"], abs=1e-5)
            assert (cr - rr).mean().item() == pytest.approx(metrics["rewards/margins"], abs=1e-5)


# ------------------------------------------------------------------------------------------- training

@pytest.mark.parametrize("trainer", ["never", "always"])
def test_training_raises_the_margin_and_saves_a_loadable_model(tiny_model_dir, tmp_path, trainer):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cycleresearcher.train.simpo import train_simpo

    out = tmp_path / "ckpt"
    cfg = SimPOConfig(use_trl=trainer, learning_rate=1e-3, epochs=3, batch_size=2, max_length=96,
                      max_prompt_length=64)
    metrics = train_simpo(f"hf:{tiny_model_dir}", _pairs(), out, cfg)
    assert metrics["trainer"] == ("native" if trainer == "never" else "trl")
    assert metrics["steps"] == 6 and len(metrics["losses"]) == 6 and len(metrics["margins"]) == 6
    assert metrics["mean_margin_end"] > metrics["mean_margin_start"] + 0.5
    assert metrics["margins"][-1] > metrics["margins"][0]
    assert metrics["losses"][-1] < metrics["losses"][0]

    model = AutoModelForCausalLM.from_pretrained(out)
    AutoTokenizer.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = [n for n, p in model.state_dict().items() if not torch.equal(p, base.state_dict()[n])]
    assert changed, "training changed no weight"
    assert json.loads((out / "train_config.json").read_text())["use_trl"] == trainer
    assert json.loads((out / "train_metrics.json").read_text())["steps"] == 6
    assert not any(p.name.startswith(".ckpt") for p in tmp_path.iterdir()), "no staging folder left behind"
    assert all("lora" not in k for k in load_file(out / "model.safetensors"))


def test_lora_training_saves_a_merged_plain_model(tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from cycleresearcher.train.simpo import train_simpo

    out = tmp_path / "lora"
    out.mkdir()
    (out / "stale.txt").write_text("an older checkpoint")  # replaced atomically, not merged into
    cfg = SimPOConfig(use_trl="never", lora=True, lora_r=4, learning_rate=5e-3, max_steps=3, batch_size=2,
                      max_length=96, max_prompt_length=64, eval_margins=False)
    metrics = train_simpo(str(tiny_model_dir), _pairs(), out, cfg)
    assert metrics["lora"] and metrics["steps"] == 3 and metrics["mean_margin_start"] is None
    keys = load_file(out / "model.safetensors")
    assert not any("lora" in k for k in keys)
    assert not (out / "stale.txt").exists()
    model = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not torch.equal(model.model.layers[0].self_attn.q_proj.weight, base.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(model.model.layers[0].input_layernorm.weight, base.model.layers[0].input_layernorm.weight)


@pytest.mark.slow
def test_simpo_on_the_embedded_gguf_model(tmp_path):
    """One LoRA step on the dequantised SmolLM2-135M: the GGUF tokenizer and weights save and load back."""
    pytest.importorskip("gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cycleresearcher.backends.base import BackendError
    from cycleresearcher.train.simpo import train_simpo

    cfg = SimPOConfig(lora=True, max_steps=1, batch_size=2, max_length=96, max_prompt_length=64, eval_margins=False)
    try:
        metrics = train_simpo("local", _pairs(2), tmp_path / "ckpt", cfg)
    except BackendError as exc:
        pytest.skip(f"embedded model not installed: {exc}")
    assert metrics["steps"] == 1 and math.isfinite(metrics["losses"][0])
    tok = AutoTokenizer.from_pretrained(tmp_path / "ckpt")
    assert tok.eos_token == "<|im_end|>" and tok.chat_template
    AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt")


def test_a_prompt_longer_than_max_prompt_length_is_refused_not_cut(tiny_model_dir):
    """Cutting a prompt would train on a context without the instruction the policy sampled from."""
    from transformers import AutoTokenizer

    from cycleresearcher.train.common import TrainingError
    from cycleresearcher.train.simpo import build_preference_dataset

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    pairs = _pairs()
    data = build_preference_dataset(pairs, tok, 512)
    assert data[0]["prompt"] == tok.apply_chat_template(pairs[0].prompt, tokenize=False, add_generation_prompt=True)
    with pytest.raises(TrainingError, match="max_prompt_length 8"):
        build_preference_dataset(pairs, tok, 8)


def test_a_float32_warm_start_then_bf16_rounds_in_one_process(tiny_model_dir, tmp_path):
    """The demo's order: SFT (float32) then SimPO with bf16 autocast, in one process. accelerate keeps one
    process-wide precision and used to refuse the second trainer ("AcceleratorState has already been
    initialized"), which stopped the demo after its warm start."""
    from datasets import Dataset

    from cycleresearcher.train.sft import train_sft
    from cycleresearcher.train.sft_config import SFTConfigLite
    from cycleresearcher.train.simpo import train_simpo

    messages = [[{"role": "user", "content": f"Topic {i}"}, {"role": "assistant", "content": "A paper."}]
                for i in range(2)]
    train_sft(f"hf:{tiny_model_dir}", Dataset.from_dict({"messages": messages}), tmp_path / "sft",
              SFTConfigLite(max_steps=1, batch_size=2, max_length=64))
    cfg = SimPOConfig(use_trl="never", bf16=True, max_steps=1, batch_size=1, max_length=96, max_prompt_length=64,
                      eval_margins=False)
    metrics = train_simpo(f"hf:{tmp_path / 'sft'}", _pairs(2), tmp_path / "simpo", cfg)
    assert metrics["steps"] == 1 and (tmp_path / "simpo" / "config.json").exists()
