"""Progress moves while a model works: the local backend's bar advances with every decoding step (tokens, so
its rate is tokens/s), and every step of a per-review review shows progress, not only the first."""

import shutil

import pytest

from cycleresearcher.backends import get_backend, local
from cycleresearcher.backends.fake import FakeBackend
from cycleresearcher.review import ReviewConfig, Reviewer
from cycleresearcher.schema import GenerationRequest


@pytest.fixture(scope="module")
def lively_backend(tiny_model_dir, tmp_path_factory):
    """The tiny model with large random weights, so greedy text varies and some rows stop early."""
    import torch
    from transformers import AutoModelForCausalLM

    path = tmp_path_factory.mktemp("lively-progress")
    shutil.copytree(tiny_model_dir, path, dirs_exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model.save_pretrained(path)
    return get_backend(f"hf:{path}?max_batch_rows=2&threads=1", fresh=True)


class RecordingBar:
    def __init__(self, total):
        self.total, self.n, self.updates, self.postfix, self.closed = total, 0, [], [], False

    def update(self, k):
        self.updates.append(k)
        self.n += k

    def set_postfix_str(self, text):
        self.postfix.append(text)

    def refresh(self):
        pass

    def close(self):
        self.closed = True


def test_local_bar_moves_per_token_and_ends_at_the_tokens_made(lively_backend, monkeypatch):
    bars = []

    def token_bar(batches, progress, desc):
        bars.append(RecordingBar(sum(len(b) * b[0].max_new_tokens for b in batches)) if progress else None)
        return bars[-1]

    monkeypatch.setattr(local, "token_bar", token_bar)
    requests = [GenerationRequest(messages=[{"role": "user", "content": text}], n=n, max_new_tokens=16,
                                  temperature=1.0, seed=3, stage="research")
                for text, n in (("hello there", 2), ("graph neural networks", 1), ("x", 1))]
    results = lively_backend.generate(requests, progress=True)
    bar = bars[0]
    made = sum(c.completion_tokens for completions in results for c in completions)
    assert bar.closed and bar.n == made == bar.total  # the total shrank to what was made: an honest ETA
    assert len(bar.updates) >= 16  # one move per decoding step, not one per batch
    assert bar.postfix[0] == "batch 1/2, 2 row(s)" and bar.postfix[-1] == "batch 2/2, 2 row(s)"
    lively_backend.generate(requests, progress=False)
    assert bars[-1] is None


class ProgressRecorder(FakeBackend):
    def __init__(self, responder, choice_scores=None):
        super().__init__(responder=responder, choice_scores=choice_scores)
        self.progress_flags = []

    def _execute(self, requests, progress=False):
        self.progress_flags.append(progress)
        return super()._execute(requests, progress)


def test_every_per_review_step_shows_progress(capsys):
    def responder(request, i):
        if request.messages[0]["content"].startswith("You are an expert reviewer"):
            return "A fine paper."  # no scores: they are chosen (or asked) next
        if "Answer with one number" in request.messages[-1]["content"]:
            return "3"
        return "## Meta Review\nFine.\n## Paper Decision\nAccept"

    asking = ProgressRecorder(responder)
    Reviewer(asking, config=ReviewConfig(n_reviewers=2, mode="per-review")).review("paper text", progress=True)
    assert asking.progress_flags == [True, True, True]  # reviews, the asked scores, the meta-review

    choosing = ProgressRecorder(responder, choice_scores=lambda messages, choices: [0.0] * len(choices))
    Reviewer(choosing, config=ReviewConfig(n_reviewers=2, mode="per-review")).review("paper text", progress=True)
    assert choosing.progress_flags == [True, True]
    err = capsys.readouterr().err
    assert "missing scores chosen by likelihood" in err and "5/5" in err
