"""SimPO's data: preference pairs as TRL's explicit-prompt dataset, tokenised the way TRL's CPO trainer does,
and collated into one batch of chosen and rejected sequences."""

from __future__ import annotations

from typing import Any, Sequence

from ..schema import PreferencePair
from .common import TrainingError

IGNORE_INDEX = -100  # label of tokens that carry no loss (prompt, padding)


def _prompt_text(tokenizer, messages: list[dict[str, str]], chat: bool) -> str:
    if chat and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # No chat template: plain text, one message per paragraph, as a base model would see it.
    return "\n\n".join(m["content"] for m in messages) + "\n\n"


def _check_prompt(tokenizer, prompt: str, max_prompt_length: int, prompt_id: str) -> str:
    """The prompt as sampled, or a TrainingError: cutting it would train the pair on a context without the
    instruction (or without the system prompt) the policy sampled from. The cycle fits prompts to
    max_prompt_length when it builds them (Researcher.prompt drops references first)."""
    n = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if n > max_prompt_length:
        raise TrainingError(f"the prompt of pair {prompt_id!r} has {n} tokens, more than max_prompt_length "
                            f"{max_prompt_length}; training on a cut prompt would drop the instruction the policy "
                            "sampled from", hint="raise simpo.max_prompt_length or use fewer references "
                                                 "(research.top_k_references)")
    return prompt


def build_preference_dataset(pairs: Sequence[PreferencePair], tokenizer, max_prompt_length: int = 512,
                             chat: bool = True):
    """HF Dataset with string columns prompt, chosen, rejected (TRL's explicit-prompt preference format).

    prompt = the chat template on the pair's messages with the assistant header added; chosen/rejected =
    the assistant text + EOS, so the model learns to stop.
    """
    from datasets import Dataset

    if not pairs:
        raise ValueError("no preference pairs to train on (the round produced no pair with a reward margin)")
    eos = tokenizer.eos_token or ""
    rows: dict[str, list[str]] = {"prompt": [], "chosen": [], "rejected": []}
    for i, pair in enumerate(pairs):
        if not isinstance(pair, PreferencePair):
            raise ValueError(f"pair {i} is a {type(pair).__name__}, not a PreferencePair")
        if not pair.prompt:
            raise ValueError(f"pair {i} ({pair.prompt_id!r}) has no prompt messages")
        prompt = _check_prompt(tokenizer, _prompt_text(tokenizer, pair.prompt, chat), max_prompt_length,
                               pair.prompt_id)
        rows["prompt"].append(prompt)
        for key, text in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            rows[key].append(text if eos and text.endswith(eos) else text + eos)
    return Dataset.from_dict(rows)


def _split(tokenizer, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    # Tokenise prompt+answer as one text and split it where the prompt alone ends: BPE can merge the last prompt
    # character with the first answer character, in which case the boundary token goes to the answer.
    full = tokenizer(prompt + answer, add_special_tokens=False)["input_ids"]
    alone = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    cut = len(alone) if full[:len(alone)] == alone else len(alone) - 1
    return full[:cut], full[cut:]


def tokenize_pair(tokenizer, prompt: str, chosen: str, rejected: str, max_length: int) -> dict[str, list[int]]:
    """{chosen,rejected}_{input_ids,labels}: TRL CPO tokenisation, with the prompt labelled -100."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    out: dict[str, list[int]] = {}
    for key, answer in (("chosen", chosen), ("rejected", rejected)):
        p_ids, a_ids = _split(tokenizer, prompt, answer)
        if bos is not None and (not p_ids or p_ids[0] != bos):
            p_ids = [bos] + p_ids
        if eos is not None and (not a_ids or a_ids[-1] != eos):
            a_ids = a_ids + [eos]
        if len(p_ids) + len(a_ids) > max_length:
            a_ids = a_ids[:max(0, max_length - len(p_ids))]
        out[f"{key}_input_ids"] = p_ids + a_ids
        out[f"{key}_labels"] = [IGNORE_INDEX] * len(p_ids) + a_ids
    return out


def collate_pairs(examples: list[dict[str, list[int]]], pad_token_id: int) -> dict[str, Any]:
    """One batch: chosen rows then rejected rows, right-padded to one length.

    Returns input_ids (2B, T), attention_mask (2B, T), labels (2B, T) and n_chosen = B.
    """
    import torch

    seqs = [e["chosen_input_ids"] for e in examples] + [e["rejected_input_ids"] for e in examples]
    labs = [e["chosen_labels"] for e in examples] + [e["rejected_labels"] for e in examples]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, lab) in enumerate(zip(seqs, labs)):
        ids[i, :len(s)] = torch.tensor(s)
        labels[i, :len(lab)] = torch.tensor(lab)
        attn[i, :len(s)] = 1
    return {"input_ids": ids, "attention_mask": attn, "labels": labels, "n_chosen": len(examples)}
