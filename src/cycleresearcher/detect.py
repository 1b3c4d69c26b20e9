"""Fast-DetectGPT: zero-shot detection of machine-generated text by conditional probability curvature.

    cycleresearcher detect paper.tex draft.pdf
    cycleresearcher detect calibrate --human h/*.txt --machine m/*.txt --out cal.json

From Python:

    from cycleresearcher.detect import Detector, DEFAULT_CALIBRATION
    d = Detector()                       # the embedded SmolLM2 as both sampling and scoring model
    [s] = d.score_parts(["We propose ..."])
    DEFAULT_CALIBRATION.probability(s.criterion, s.n_tokens)

Method (Bao et al., "Fast-DetectGPT", ICLR 2024, analytic form). Machine text sits near a local maximum of
the model's conditional log-probability: each token it picks is likelier than a typical alternative token
drawn from the model at that position. With a scoring model q and a sampling model p over one vocabulary,
per position j (p_j = p(.|x_<j), q_j = q(.|x_<j)):

    mu_j  = E_{v~p_j}[log q_j(v)]           var_j = E_{v~p_j}[(log q_j(v))^2] - mu_j^2
    D(x)  = (sum_j log q_j(x_j) - sum_j mu_j) / sqrt(sum_j var_j)

Higher D means more likely machine-generated. p == q is the white-box detector.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DOCUMENT_SUFFIXES = (".tex", ".pdf", ".md", ".txt")


# --------------------------------------------------------------------------------------------------------------
# The criterion: pure functions on logits.
# --------------------------------------------------------------------------------------------------------------

def criterion_terms(logits_score: "torch.Tensor", logits_sample: "torch.Tensor", labels: "torch.Tensor",
                    mask: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """Per-text sums (log-likelihood, mean, variance) of the analytic criterion.

    Shapes: logits_score, logits_sample (batch, seq, vocab), where position t predicts labels[:, t];
    labels (batch, seq) int64; mask (batch, seq) bool or 0/1, true for the positions that count.
    Returns three (batch,) float tensors: sum_j log q_j(x_j), sum_j mu_j, sum_j var_j over masked positions.
    Sums (not means) so that windows of one long text combine by adding them.
    """
    import torch

    if logits_score.shape != logits_sample.shape:
        raise ValueError(f"scoring logits {tuple(logits_score.shape)} and sampling logits "
                         f"{tuple(logits_sample.shape)} differ in shape")
    if labels.shape != logits_score.shape[:2] or mask.shape != labels.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and mask {tuple(mask.shape)} must be "
                         f"{tuple(logits_score.shape[:2])}")
    weight = mask.to(torch.float32)
    log_q = torch.log_softmax(logits_score.float(), dim=-1)                      # (B, T, V)
    p = torch.softmax(logits_sample.float(), dim=-1) if logits_sample is not logits_score else log_q.exp()
    # Fast-DetectGPT, analytic sampling discrepancy (Bao et al. 2024, Sec. 3 / Eq. for d~(x, p_theta, q_phi)):
    #   mu_j = sum_v p_j(v) log q_j(v);  var_j = sum_v p_j(v) log q_j(v)^2 - mu_j^2
    mu = (p * log_q).sum(-1)                                                     # (B, T)
    var = (p * log_q.square()).sum(-1) - mu.square()                             # (B, T)
    var = var.clamp_min(0.0)  # float rounding can leave -1e-9 on near-deterministic positions
    ll = log_q.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)               # (B, T)
    return (ll * weight).sum(-1), (mu * weight).sum(-1), (var * weight).sum(-1)


def analytic_criterion(logits_score: "torch.Tensor", logits_sample: "torch.Tensor", labels: "torch.Tensor",
                       mask: "torch.Tensor") -> "torch.Tensor":
    """Fast-DetectGPT's analytic criterion D(x), one value per text.

    Shapes: logits_score, logits_sample (batch, seq, vocab) with position t predicting labels[:, t];
    labels (batch, seq); mask (batch, seq), true where a token counts. Returns (batch,) float32.
    D = (sum_j log q_j(x_j) - sum_j mu_j) / sqrt(sum_j var_j); NaN for a text with no counted token.
    """
    ll, mu, var = criterion_terms(logits_score, logits_sample, labels, mask)
    return (ll - mu) / var.sqrt()


def monte_carlo_criterion(logits_score: "torch.Tensor", logits_sample: "torch.Tensor", labels: "torch.Tensor",
                          mask: "torch.Tensor", n_samples: int = 10_000,
                          generator: "torch.Generator | None" = None) -> "torch.Tensor":
    """The sampled form of the criterion, which the analytic one computes exactly in the limit.

    Draws n_samples alternative texts x~, each token x~_j ~ p_j independently given the observed prefix
    x_<j, and returns (log q(x) - mean_k log q(x~_k)) / std_k log q(x~_k). Shapes as analytic_criterion;
    returns (batch,). Memory is batch * seq * n_samples int64.
    """
    import torch

    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2, got {n_samples}")
    weight = mask.to(torch.float32)
    log_q = torch.log_softmax(logits_score.float(), dim=-1)                      # (B, T, V)
    p = torch.softmax(logits_sample.float(), dim=-1)
    b, t, v = p.shape
    draws = torch.multinomial(p.reshape(b * t, v), n_samples, replacement=True, generator=generator)
    draws = draws.reshape(b, t, n_samples)                                       # (B, T, n)
    sampled = log_q.gather(-1, draws)                                            # (B, T, n)
    sampled_total = (sampled * weight.unsqueeze(-1)).sum(1)                      # (B, n)
    observed = (log_q.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1) * weight).sum(-1)
    return (observed - sampled_total.mean(-1)) / sampled_total.std(-1)


@dataclass(frozen=True)
class CriterionParts:
    """The summed terms of D for one text, kept so that windows and reports can be combined and traced."""

    log_likelihood: float  # sum_j log q_j(x_j), nats
    mean: float            # sum_j mu_j, nats
    variance: float        # sum_j var_j, nats^2
    n_tokens: int          # scored positions (every token but the first)

    @property
    def criterion(self) -> float:
        if self.n_tokens == 0 or self.variance <= 0.0:
            return math.nan
        return (self.log_likelihood - self.mean) / math.sqrt(self.variance)

    def __add__(self, other: "CriterionParts") -> "CriterionParts":
        return CriterionParts(self.log_likelihood + other.log_likelihood, self.mean + other.mean,
                              self.variance + other.variance, self.n_tokens + other.n_tokens)


def window_spans(n_tokens: int, max_tokens: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows (start, end, first_scored) covering a text of n_tokens; token indices, end exclusive.

    Window k spans [k*stride, k*stride + max_tokens). Each position 1..n_tokens-1 is scored exactly once,
    in the first window that reaches it, so it keeps at least max_tokens - stride tokens of context
    (stride = max_tokens - 1: neighbouring windows share only the one token the next needs as context).
    """
    if max_tokens < 2:
        raise ValueError(f"max_tokens must be at least 2, got {max_tokens}")
    if not 1 <= stride < max_tokens:
        raise ValueError(f"stride must be in [1, max_tokens - 1] = [1, {max_tokens - 1}] so every token is "
                         f"scored with context; got {stride}")
    spans, start, scored_to = [], 0, 1
    while True:
        end = min(start + max_tokens, n_tokens)
        spans.append((start, end, scored_to))
        if end >= n_tokens:
            return spans
        scored_to, start = end, start + stride


# --------------------------------------------------------------------------------------------------------------
# The detector: models, batching, windows.
# --------------------------------------------------------------------------------------------------------------

@dataclass
class Detector:
    """Scores texts with Fast-DetectGPT on local causal LMs that share one tokenizer.

    scoring_spec / sampling_spec: "local" (the embedded SmolLM2-135M) or a model folder / .gguf path;
    sampling_spec None means the scoring model (white-box). max_tokens: window length in tokens (capped at
    the models' context); stride: tokens between window starts (default max_tokens - 1); batch_size: windows
    per forward pass (memory ~ batch_size * max_tokens * vocab * 4 bytes per logits tensor).
    """

    scoring_spec: str = "local"
    sampling_spec: str | None = None
    max_tokens: int = 512
    stride: int | None = None
    batch_size: int = 4
    _models: tuple = field(default=(), init=False, repr=False, compare=False)

    def _load(self):
        if self._models:
            return self._models
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        from .backends.loader import load_causal_lm

        scoring, tokenizer = load_causal_lm(self.scoring_spec)
        sampling = scoring
        if self.sampling_spec is not None and self.sampling_spec != self.scoring_spec:
            sampling, sampling_tokenizer = load_causal_lm(self.sampling_spec)
            check_same_tokenizer(tokenizer, sampling_tokenizer, self.scoring_spec, self.sampling_spec)
        context = min(_context_length(scoring), _context_length(sampling))
        window = min(self.max_tokens, context)
        if window < self.max_tokens:
            log.info("window capped at the models' context: %d tokens", window)
        stride = self.stride if self.stride is not None else window - 1
        window_spans(window, window, stride)  # validates the pair before any work
        self._models = (scoring, sampling, tokenizer, window, stride)
        return self._models

    @property
    def window(self) -> int:
        """Effective window length in tokens (max_tokens capped at the models' context)."""
        return self._load()[3]

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        tokenizer = self._load()[2]
        return [tokenizer(text)["input_ids"] for text in texts]

    def score(self, texts: Sequence[str]) -> list[float]:
        """D(x) for each text (higher = more likely machine-generated)."""
        return [parts.criterion for parts in self.score_parts(texts)]

    def score_parts(self, texts: Sequence[str]) -> list[CriterionParts]:
        """Summed criterion terms for each text; see CriterionParts."""
        return self.score_token_ids(self.tokenize(texts))

    def score_token_ids(self, token_ids: Sequence[Sequence[int]]) -> list[CriterionParts]:
        """As score_parts, on already tokenized texts (lets callers compare texts at equal token counts)."""
        scoring, sampling, tokenizer, window, stride = self._load()
        segments = []  # (text index, window token ids, index of the first position this window scores)
        for i, ids in enumerate(token_ids):
            if len(ids) < 2:
                raise ValueError(f"text {i} has {len(ids)} token(s); the criterion needs at least 2")
            for start, end, first in window_spans(len(ids), window, stride):
                segments.append((i, list(ids[start:end]), first - start))
        # Longest first, so each batch pads little.
        order = sorted(range(len(segments)), key=lambda k: -len(segments[k][1]))
        totals = [CriterionParts(0.0, 0.0, 0.0, 0) for _ in token_ids]
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        for b in range(0, len(order), self.batch_size):
            batch = [segments[k] for k in order[b:b + self.batch_size]]
            for (i, _, _), parts in zip(batch, self._score_batch(scoring, sampling, batch, pad_id)):
                totals[i] = totals[i] + parts
        return totals

    def _score_batch(self, scoring, sampling, batch, pad_id: int) -> list[CriterionParts]:
        import torch

        length = max(len(ids) for _, ids, _ in batch)
        input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), length), dtype=torch.long)
        scored = torch.zeros((len(batch), length), dtype=torch.bool)
        for row, (_, ids, first) in enumerate(batch):  # right padding: positions match the unpadded text
            input_ids[row, :len(ids)] = torch.tensor(ids)
            attention[row, :len(ids)] = 1
            scored[row, first:len(ids)] = True
        device = scoring.device
        input_ids, attention = input_ids.to(device), attention.to(device)
        with torch.inference_mode():
            logits_q = scoring(input_ids=input_ids, attention_mask=attention).logits[:, :-1]
            if sampling is scoring:
                logits_p = logits_q
            else:
                logits_p = sampling(input_ids=input_ids.to(sampling.device),
                                    attention_mask=attention.to(sampling.device)).logits[:, :-1].to(device)
                vocab = min(logits_q.shape[-1], logits_p.shape[-1])  # drop padded rows of a larger head
                logits_q, logits_p = logits_q[..., :vocab], logits_p[..., :vocab]
            labels, mask = input_ids[:, 1:], scored[:, 1:].to(device)
            out = []
            for row in range(len(batch)):  # one row at a time: three (seq, vocab) float tensors, not (B, ...)
                lq = logits_q[row:row + 1]
                lp = lq if logits_p is logits_q else logits_p[row:row + 1]  # shared: one softmax, not two
                ll, mu, var = criterion_terms(lq, lp, labels[row:row + 1], mask[row:row + 1])
                out.append(CriterionParts(float(ll), float(mu), float(var), int(mask[row].sum())))
        return out


def check_same_tokenizer(a, b, name_a: str = "scoring", name_b: str = "sampling") -> None:
    """Raise ValueError unless two tokenizers map the same strings to the same ids."""
    vocab_a, vocab_b = a.get_vocab(), b.get_vocab()
    if vocab_a != vocab_b:
        raise ValueError(f"models {name_a!r} and {name_b!r} use different tokenizers "
                         f"({len(vocab_a)} vs {len(vocab_b)} tokens); Fast-DetectGPT compares their "
                         "distributions token by token, so both must share one vocabulary")


def _context_length(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", None) or 2048)


# --------------------------------------------------------------------------------------------------------------
# Calibration: criterion -> probability.
# --------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Calibration:
    """Logistic map from D to P(machine-generated) = sigmoid(slope * D' + intercept).

    D' rescales D to `reference_tokens`: for a fixed per-token discrepancy D grows like sqrt(n), so a long
    paper scored with a map fitted on short texts would look machine-made whatever it is. Texts longer than
    the reference are scaled by sqrt(reference_tokens / n); shorter ones are left alone, which keeps their
    noisier D from being amplified. reference_tokens None turns the rescaling off.
    """

    slope: float
    intercept: float
    reference_tokens: int | None = None
    source: str = ""

    def adjusted(self, criterion: float, n_tokens: int | None = None) -> float:
        if self.reference_tokens and n_tokens and n_tokens > self.reference_tokens:
            return criterion * math.sqrt(self.reference_tokens / n_tokens)
        return criterion

    def probability(self, criterion: float, n_tokens: int | None = None) -> float:
        """P(machine-generated) for a criterion value (of a text of n_tokens scored tokens)."""
        z = self.slope * self.adjusted(criterion, n_tokens) + self.intercept
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    @property
    def threshold(self) -> float:
        """The (reference-length) criterion where the probability crosses 0.5."""
        return -self.intercept / self.slope

    @classmethod
    def fit(cls, human_scores: Sequence[float], machine_scores: Sequence[float],
            human_tokens: Sequence[int] | None = None, machine_tokens: Sequence[int] | None = None,
            source: str = "") -> "Calibration":
        """Fit the logistic map by maximum likelihood (scikit-learn, weak L2 so separable data stays finite).

        With token counts, the reference length is their median and longer texts are rescaled to it first.
        """
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        human, machine = list(map(float, human_scores)), list(map(float, machine_scores))
        if len(human) < 2 or len(machine) < 2:
            raise ValueError(f"calibration needs at least 2 human and 2 machine texts, got "
                             f"{len(human)} and {len(machine)}")
        if not all(math.isfinite(s) for s in human + machine):
            raise ValueError("calibration scores must be finite numbers")
        reference = None
        if human_tokens is not None and machine_tokens is not None:
            if len(human_tokens) != len(human) or len(machine_tokens) != len(machine):
                raise ValueError("token counts must match the scores one to one")
            reference = int(np.median(list(human_tokens) + list(machine_tokens)))
            probe = cls(1.0, 0.0, reference)
            human = [probe.adjusted(s, n) for s, n in zip(human, human_tokens)]
            machine = [probe.adjusted(s, n) for s, n in zip(machine, machine_tokens)]
        x = np.array(human + machine).reshape(-1, 1)
        y = np.array([0] * len(human) + [1] * len(machine))
        model = LogisticRegression(C=100.0).fit(x, y)
        slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
        if slope <= 0:
            raise ValueError(f"machine texts do not score higher than human ones (mean D {np.mean(machine):.2f}"
                             f" vs {np.mean(human):.2f}); a calibration would invert the detector")
        return cls(slope, intercept, reference, source or f"fit on {len(human)} human + {len(machine)} machine")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        unknown = set(data) - {"slope", "intercept", "reference_tokens", "source"}
        if unknown or "slope" not in data or "intercept" not in data:
            raise ValueError(f"not a calibration: needs slope and intercept, unknown keys {sorted(unknown)}")
        cal = cls(float(data["slope"]), float(data["intercept"]),
                  None if data.get("reference_tokens") is None else int(data["reference_tokens"]),
                  str(data.get("source", "")))
        if cal.slope <= 0:
            raise ValueError(f"calibration slope must be positive, got {cal.slope}")
        return cal

    def save(self, path: str | os.PathLike) -> Path:
        import json

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        import json

        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a calibration is a JSON object")
        return cls.from_dict(data)


# Fitted by `bench/detect.py` (seed 0): the embedded SmolLM2-135M as sampling and scoring model; 30 ICLR 2017/18
# abstracts + 10 NeurIPS 2025 introductions vs 40 SmolLM2 texts prompted with the same titles, every text cut to
# its first 120 tokens (119 scored). Mean D there: human -2.51, machine 2.77; AUROC 0.996; threshold D = 0.25.
# It only fits texts from (and scored by) the embedded model: refit with `cycleresearcher detect calibrate`
# whenever either model changes or the texts come from another generator.
DEFAULT_CALIBRATION = Calibration(slope=2.0829, intercept=-0.5309, reference_tokens=119,
                                  source="bench/detect.py: SmolLM2-135M white-box, 40+40 texts of 120 tokens")


def verdict(probability: float, threshold: float = 0.5) -> str:
    """'machine' at or above the threshold, else 'human'."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability, got {threshold}")
    return "machine" if probability >= threshold else "human"


# --------------------------------------------------------------------------------------------------------------
# Files: what the CLI calls.
# --------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Detection:
    """One document's result."""

    path: str
    criterion: float
    n_tokens: int
    probability: float
    verdict: str

    def to_dict(self) -> dict:
        return asdict(self)


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, plus the .tex/.pdf/.md/.txt files inside any folder given (sorted).

    A folder is a collection of documents here; to score a LaTeX project, give its main .tex file.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{path}: no {'/'.join(DOCUMENT_SUFFIXES)} files inside")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file")
    return out


def read_document_text(path: str | os.PathLike) -> str:
    """Plain text of a document (.tex, .pdf, .md, .txt, or anything else formats.document reads)."""
    from .formats.document import load_document

    doc = load_document(Path(path))
    for problem in doc.problems:
        log.warning("%s: %s", path, problem)
    return doc.text


def _read_all(paths: Sequence[Path]) -> list[str]:
    texts = [read_document_text(p) for p in paths]
    for path, text in zip(paths, texts):
        if not text.strip():
            raise ValueError(f"{path}: no text to score")
    return texts


def detect_files(paths: Sequence[str | os.PathLike], scoring_spec: str = "local", sampling_spec: str | None = None,
                 calibration: Calibration | str | os.PathLike | None = None,
                 max_tokens: int = 512) -> list[Detection]:
    """Score documents and map each criterion to a probability and a verdict."""
    files = expand_paths(paths)
    if not isinstance(calibration, Calibration):
        calibration = Calibration.load(calibration) if calibration is not None else DEFAULT_CALIBRATION
    detector = Detector(scoring_spec, sampling_spec, max_tokens=max_tokens)
    results = []
    for path, parts in zip(files, detector.score_parts(_read_all(files))):
        prob = calibration.probability(parts.criterion, parts.n_tokens)
        results.append(Detection(str(path), parts.criterion, parts.n_tokens, prob, verdict(prob)))
    return results


def calibrate_files(human: Sequence[str | os.PathLike], machine: Sequence[str | os.PathLike],
                    out: str | os.PathLike, scoring_spec: str = "local", sampling_spec: str | None = None,
                    max_tokens: int = 512) -> Calibration:
    """Fit a Calibration on human-written and machine-generated documents and save it to `out`."""
    human_files, machine_files = expand_paths(human), expand_paths(machine)
    detector = Detector(scoring_spec, sampling_spec, max_tokens=max_tokens)
    human_parts = detector.score_parts(_read_all(human_files))
    machine_parts = detector.score_parts(_read_all(machine_files))
    models = scoring_spec if sampling_spec in (None, scoring_spec) else f"{scoring_spec} / {sampling_spec}"
    calibration = Calibration.fit([p.criterion for p in human_parts], [p.criterion for p in machine_parts],
                                  [p.n_tokens for p in human_parts], [p.n_tokens for p in machine_parts],
                                  source=f"{len(human_files)} human + {len(machine_files)} machine files, "
                                         f"models {models}")
    calibration.save(out)
    return calibration
