"""What the web UI's review job does, through the library: read the paper, review it, score it, detect.

    services = Services(WebConfig(backends=["local"], reward=Path("runs/demo-reward-model")))
    result = review_job(job, services, Path("/tmp/upload/paper.pdf"), {"backend": "local", "reviewers": 4})

Every model is loaded once per process and only by the worker thread: backends through the registry's cache,
the scalar reward model and the detector here.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError, InputError
from .jobs import Job

log = logging.getLogger(__name__)

REWARD_MEANING = ("The cycle's reward: the mean of the reviewers' ratings on the ICLR scale (1 strong reject, "
                  "3 reject, 5 marginally below, 6 marginally above the threshold, 8 accept, 10 strong accept).")
SCALAR_MEANING = ("The scalar reward model reads only the text (an embedding plus length features) and predicts "
                  "the mean rating human reviewers would give and the probability of acceptance, from the ICLR "
                  "reviews it was trained on. It is fast and coarse; the paper's length alone explains much of it.")
DETECTOR_MEANING = ("Fast-DetectGPT (analytic criterion) with the embedded SmolLM2-135M, calibrated on short texts "
                    "from that model: a high probability means the text looks machine-written to it; text from "
                    "other generators or long papers are outside its calibration.")


@dataclass
class WebConfig:
    """What `cycleresearcher serve` was started with."""

    runs: Path = field(default=Path("runs"), metadata={"help": "folder of run directories to browse"})
    backends: list[str] = field(default_factory=lambda: ["local"], metadata={"help": "reviewer backend specs offered"})
    reward: Optional[Path] = field(default=None, metadata={"help": "scalar reward model folder (optional)"})
    token: str = field(default="", metadata={"help": "access token required on every request ('' for none)"})
    max_upload_mb: float = field(default=50.0, metadata={"help": "largest upload or pasted text, in MB"})
    reviewers: int = field(default=4, metadata={"help": "default number of reviewers"})
    max_new_tokens: int = field(default=2048, metadata={"help": "reviewer tokens for all reviews + meta-review"})

    def __post_init__(self) -> None:
        self.runs = Path(self.runs)
        self.backends = [b.strip() for b in self.backends if b and b.strip()]
        if not self.backends:
            raise ConfigError("give at least one reviewer backend (--backend)")
        if self.token and not re.fullmatch(r"[A-Za-z0-9._~-]{8,200}", self.token):
            raise ConfigError("--token must be 8 to 200 characters of A-Z a-z 0-9 . _ ~ - (it goes in URLs and a "
                              "cookie)")
        if self.max_upload_mb <= 0:
            raise ConfigError(f"max_upload_mb must be positive, got {self.max_upload_mb}")
        if self.reward is not None and not Path(self.reward).is_dir():
            raise ConfigError(f"--reward {self.reward}: not a reward model folder",
                              hint="train one with `cycleresearcher reward train`")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)


class Services:
    """The models behind the page, each loaded on first use and then kept."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._reward_judge: Any = None
        self._detector: Any = None

    def backend(self, spec: str):
        if spec not in self.config.backends:
            raise InputError(f"backend {spec!r} is not one of this server's: {', '.join(self.config.backends)}")
        from ..backends import get_backend

        return get_backend(spec)  # the registry keeps one instance per spec

    def reward_judge(self):
        """The scalar reward model as a judge (judges.get_judge("reward:DIR")), or None when none is configured."""
        if self.config.reward is None:
            return None
        with self._lock:
            if self._reward_judge is None:
                from ..judges import get_judge

                self._reward_judge = get_judge(f"reward:{self.config.reward}")
            return self._reward_judge

    def detector(self):
        with self._lock:
            if self._detector is None:
                from ..detect import Detector

                self._detector = Detector("local")
            return self._detector


def review_options(form: dict[str, Any], config: WebConfig) -> dict[str, Any]:
    """The review job's options from the form, checked (bad values are InputErrors)."""
    backend = str(form.get("backend") or config.backends[0])
    if backend not in config.backends:
        raise InputError(f"backend {backend!r} is not offered here; choose one of {', '.join(config.backends)}")
    try:
        reviewers = int(form.get("reviewers") or config.reviewers)
    except ValueError:
        raise InputError("the number of reviewers must be a whole number") from None
    if not 1 <= reviewers <= 8:
        raise InputError(f"the number of reviewers must be between 1 and 8, got {reviewers}")
    return {"backend": backend, "reviewers": reviewers, "detect": str(form.get("detect", "")).lower() in
            ("1", "on", "true", "yes")}


def review_job(job: Job, services: Services, source: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Review one paper file: the ReviewSet, the scalar reward (when a model is configured) and, if asked, the
    detector's verdict. Raises the library's errors; the queue turns them into the job's one-line error."""
    from ..paper_text import read_paper
    from ..review import ReviewConfig, Reviewer

    job.step(f"reading {job.label}")
    paper = read_paper(source)
    if not paper.text.strip():
        raise InputError(f"no text could be read from {job.label}")
    job.step(f"read {len(paper.text.split())} words" + (f": {paper.title}" if paper.title else ""))

    job.step(f"loading the reviewer ({options['backend']})")
    backend = services.backend(options["backend"])
    config = ReviewConfig(n_reviewers=options["reviewers"], max_new_tokens=services.config.max_new_tokens)
    reviewer = Reviewer(_Reporting(backend, job), config=config)
    job.step(f"reviewing: {config.n_reviewers} reviewer(s) in {reviewer.mode} mode (this is the slow part)")
    review_set = reviewer.review(paper)
    job.step(f"reviews written: mean rating {_fmt(review_set.mean_rating)}, decision {review_set.decision or '-'}")

    result: dict[str, Any] = {"title": paper.title, "words": len(paper.text.split()),
                              "review_set": review_set.to_dict(), "scalar": None, "detector": None}
    judge = services.reward_judge()
    if judge is not None:
        job.step("scoring with the scalar reward model")
        verdict = judge.score([source])[0]
        result["scalar"] = {"reward": verdict.score, "accept_prob": verdict.accept_prob,
                            "penalized": verdict.penalized, "unpenalized": verdict.unpenalized_score,
                            "problems": list(verdict.problems)}
    if options.get("detect"):
        job.step("running the detector (loads SmolLM2-135M once)")
        result["detector"] = detect_text(services.detector(), paper.text)
    return result


class _Reporting:
    """The backend as the reviewer sees it, with each model call reported as a job step (a review on a CPU is
    minutes of calls; the page shows them go by). Everything else is the backend's own."""

    def __init__(self, backend, job: Job) -> None:
        self._backend, self._job, self._calls = backend, job, 0

    def __getattr__(self, name: str):
        return getattr(self._backend, name)

    def generate(self, requests, progress: bool = False):
        self._calls += 1
        n = sum(r.n for r in requests)
        self._job.step(f"model call {self._calls}: {n} completion(s) of up to {max(r.max_new_tokens for r in requests)} "
                       f"tokens")
        start = time.monotonic()
        results = self._backend.generate(requests, progress=progress)
        tokens = sum(c.completion_tokens for row in results for c in row)
        self._job.step(f"model call {self._calls} done: {tokens} tokens in {time.monotonic() - start:.0f} s")
        return results

    def choice_logprobs(self, *args, **kwargs):
        self._calls += 1
        self._job.step(f"model call {self._calls}: choosing among allowed answers by likelihood (a missing score "
                       "or the decision)")
        return self._backend.choice_logprobs(*args, **kwargs)


def detect_text(detector, text: str) -> dict[str, Any]:
    """The detector's verdict on one text, with the default calibration."""
    from ..detect import DEFAULT_CALIBRATION, verdict

    parts = detector.score_parts([text])[0]
    probability = DEFAULT_CALIBRATION.probability(parts.criterion, parts.n_tokens)
    return {"criterion": parts.criterion, "n_tokens": parts.n_tokens, "probability": probability,
            "verdict": verdict(probability)}


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"
