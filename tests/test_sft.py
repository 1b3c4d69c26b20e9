"""SFT: assistant-turn masking, data layouts, and short training runs on the tiny model (full and LoRA)."""

import json

import pytest

from cycleresearcher.train._config import ConfigError
from cycleresearcher.train.sft_config import SFTConfigLite


def _conversations(n=4):
    return [[{"role": "system", "content": "You write papers."},
             {"role": "user", "content": f"Topic {i}: graph neural networks"},
             {"role": "assistant", "content": "We propose a new method for graph neural networks."},
             {"role": "user", "content": "## Experimental_results\n```json\n[]\n```"},
             {"role": "assistant", "content": "The results show that our approach improves accuracy."}]
            for i in range(n)]


def test_assistant_mask_covers_exactly_the_assistant_turns(tiny_model_dir):
    from transformers import AutoTokenizer

    from cycleresearcher.train.sft import assistant_mask

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids, mask = assistant_mask(tok, _conversations(1)[0])
    assert len(ids) == len(mask)
    trained = tok.decode([t for t, m in zip(ids, mask) if m])
    assert trained == ("We propose a new method for graph neural networks.<|im_end|>\n"
                       "The results show that our approach improves accuracy.<|im_end|>\n")
    assert tok.decode(ids) == tok.apply_chat_template(_conversations(1)[0], tokenize=False)


def test_layouts_and_fallbacks(tiny_model_dir):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from cycleresearcher.train.sft import prepare_sft_dataset, to_messages_dataset

    review = Dataset.from_dict({"prompt_messages": [[{"role": "user", "content": "Review this paper."}]],
                                "target": ["## Summary\nGood."]})
    msgs = to_messages_dataset(review)["messages"][0]
    assert msgs[-1] == {"role": "assistant", "content": "## Summary\nGood."}
    with pytest.raises(ValueError, match="need `messages`"):
        to_messages_dataset(Dataset.from_dict({"text": ["hello"]}))
    with pytest.raises(ValueError, match="no assistant turn"):
        to_messages_dataset(Dataset.from_dict({"messages": [[{"role": "user", "content": "hi"}]]}))

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    data, mode = prepare_sft_dataset(Dataset.from_dict({"messages": _conversations(2)}), tok)
    assert mode == "assistant" and set(data.column_names) == {"input_ids", "assistant_masks"}
    # A template that is not prefix-preserving (it prints the message count first) falls back to the last turn.
    tok.chat_template = "{{ messages|length }}" + tok.chat_template
    data, mode = prepare_sft_dataset(Dataset.from_dict({"messages": _conversations(2)}), tok)
    assert mode == "completion"
    assert data[0]["completion"] == [_conversations(1)[0][-1]] and len(data[0]["prompt"]) == 4


def test_config_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="unknown keys"):
        SFTConfigLite.from_dict({"epochs": 1, "packing": True})
    with pytest.raises(ConfigError, match="loss_on"):
        SFTConfigLite.from_dict({"loss_on": "everything"})
    assert SFTConfigLite(lora=True).lr == 2e-4 and SFTConfigLite().bf16 is False


def test_sft_lowers_the_loss_and_saves(tiny_model_dir, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cycleresearcher.train.sft import train_sft

    out = tmp_path / "sft"
    cfg = SFTConfigLite(learning_rate=1e-3, max_steps=6, batch_size=4, max_length=128)
    metrics = train_sft(f"hf:{tiny_model_dir}", Dataset.from_dict({"messages": _conversations()}), out, cfg)
    assert metrics["loss_on"] == "assistant" and metrics["steps"] == 6
    assert metrics["losses"][-1] < metrics["losses"][0] - 0.3
    AutoModelForCausalLM.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).chat_template
    assert json.loads((out / "train_metrics.json").read_text())["steps"] == 6
    with pytest.raises(ValueError, match="empty"):
        train_sft(str(tiny_model_dir), Dataset.from_dict({"messages": []}), tmp_path / "x", cfg)


def test_lora_sft_saves_a_merged_model(tiny_model_dir, tmp_path):
    import torch
    from datasets import Dataset
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from cycleresearcher.train.sft import train_sft

    out = tmp_path / "sft-lora"
    cfg = SFTConfigLite(lora=True, lora_r=4, learning_rate=5e-3, max_steps=3, batch_size=4, max_length=128)
    metrics = train_sft(str(tiny_model_dir), Dataset.from_dict({"messages": _conversations()}), out, cfg)
    assert metrics["lora"] and metrics["steps"] == 3
    assert not any("lora" in k for k in load_file(out / "model.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not torch.equal(model.model.layers[1].mlp.up_proj.weight, base.model.layers[1].mlp.up_proj.weight)


def test_micro_batches_give_the_same_step_as_one_padded_batch(tiny_model_dir, tmp_path):
    """One sequence per forward pass (the CPU default, for memory) trains exactly as the whole batch at once:
    same loss, same weights after the step, although the sequences differ in length."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from cycleresearcher.train.sft import train_sft

    rows = _conversations(4)
    for i, conv in enumerate(rows):  # different lengths, so the one-batch pass pads
        conv[-1]["content"] += " More words." * (3 * i)
    data = Dataset.from_dict({"messages": rows})
    runs = {}
    for micro in (4, 1):
        cfg = SFTConfigLite(learning_rate=1e-3, max_steps=1, batch_size=4, micro_batch_size=micro, max_length=256,
                            lr_scheduler="constant")
        metrics = train_sft(f"hf:{tiny_model_dir}", data, tmp_path / f"m{micro}", cfg)
        assert metrics["micro_batch"] == micro
        runs[micro] = (metrics["losses"][0], AutoModelForCausalLM.from_pretrained(tmp_path / f"m{micro}"))
    assert runs[1][0] == pytest.approx(runs[4][0], rel=1e-4)
    for a, b in zip(runs[1][1].parameters(), runs[4][1].parameters()):
        assert torch.allclose(a, b, atol=1e-5)
    assert SFTConfigLite(batch_size=4).micro_batch(cuda=False) == 1
    assert SFTConfigLite(batch_size=4).micro_batch(cuda=True) == 4
    with pytest.raises(ConfigError, match="micro_batch_size"):
        SFTConfigLite(batch_size=4, micro_batch_size=3)
