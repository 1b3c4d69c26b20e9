"""The embedded SmolLM2 through the `local` spec writes real English (loads the real model: slow)."""

import pytest

from cycleresearcher.schema import GenerationRequest


@pytest.mark.slow
def test_local_embedded_model_writes_english():
    from cycleresearcher.backends import get_backend

    backend = get_backend("local")
    request = GenerationRequest(messages=[{"role": "user", "content": "Write an abstract about graph neural networks"}],
                                temperature=0, max_new_tokens=48, stage="research")
    completion = backend.generate([request])[0][0]
    text = completion.text
    words = text.split()
    assert len(words) >= 20, text
    assert sum(c.isascii() for c in text) / len(text) > 0.95, text
    assert "graph" in text.lower(), text
    # common English words, not random tokens
    assert sum(w.lower().strip(".,()") in {"the", "a", "of", "and", "to", "in", "is", "are"} for w in words) >= 3, text
    assert backend.context_length == 8192
    assert backend.default_review_mode == "per-review" and backend.supports_choice_scoring
    assert completion.prompt_tokens == backend.count_tokens(
        backend.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False))
    assert backend.usage.to_dict()["research"]["completion_tokens"] == completion.completion_tokens == 48
