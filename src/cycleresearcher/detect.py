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

from . import limits
from .detect_calibration import DEFAULT_CALIBRATION, Calibration, models_label, verdict  # noqa: F401  (re-exported)
from .errors import InputError

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
# Files: what the CLI calls.
# --------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Detection:
    """One document's result, with the calibration that turned its criterion into a probability."""

    path: str
    criterion: float
    n_tokens: int
    probability: float
    verdict: str
    calibration: str = ""  # the calibration's source
    calibration_model: str = ""  # the models it was fitted on
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = asdict(self)
        out["warnings"] = list(self.warnings)
        return out


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, plus the .tex/.pdf/.md/.txt files inside any folder given (sorted).

    A folder is a collection of documents here; to score a LaTeX project, give its main .tex file. Files are
    listed without following symlinks that leave the folder; FIFOs and devices are refused.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = limits.confined_files(path, DOCUMENT_SUFFIXES)
            if not found:
                raise InputError(f"{path}: no {'/'.join(DOCUMENT_SUFFIXES)} files inside")
            out.extend(found)
        elif path.exists():
            limits.check_regular_file(path, "document")
            out.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file")
    return out


def read_document_text(path: str | os.PathLike) -> str:
    """Plain text of a document (.tex, .pdf, .md, .txt, or anything else formats.document reads); InputError
    when it has no readable text."""
    from .formats.document import load_document

    doc = load_document(Path(path))
    for problem in doc.problems:
        log.warning("%s: %s", path, problem)
    return doc.text


def _read_all(paths: Sequence[Path]) -> list[str]:
    texts = [read_document_text(p) for p in paths]
    for path, text in zip(paths, texts):
        if not text.strip():
            raise InputError(f"{path}: no text to score")
    return texts


def detect_files(paths: Sequence[str | os.PathLike], scoring_spec: str = "local", sampling_spec: str | None = None,
                 calibration: Calibration | str | os.PathLike | None = None,
                 max_tokens: int = 512) -> list[Detection]:
    """Score documents and map each criterion to a probability and a verdict.

    Each Detection records the calibration used; one fitted on other models is used with a warning (logged
    and kept in the result), since its probabilities are on another model's scale."""
    files = expand_paths(paths)
    if not isinstance(calibration, Calibration):
        calibration = Calibration.load(calibration) if calibration is not None else DEFAULT_CALIBRATION
    warning = calibration.mismatch(scoring_spec, sampling_spec)
    if warning:
        log.warning("%s", warning)
    texts = _read_all(files)
    detector = Detector(scoring_spec, sampling_spec, max_tokens=max_tokens)
    results = []
    for path, parts in zip(files, detector.score_token_ids(_checked_ids(detector, files, texts))):
        prob = calibration.probability(parts.criterion, parts.n_tokens)
        if not math.isfinite(parts.criterion):
            raise InputError(f"{path}: the criterion is undefined (no variation in the model's predictions)")
        results.append(Detection(str(path), parts.criterion, parts.n_tokens, prob, verdict(prob),
                                 calibration.source, calibration.model, (warning,) if warning else ()))
    return results


def _checked_ids(detector: "Detector", files: Sequence[Path], texts: Sequence[str]) -> list[list[int]]:
    ids = detector.tokenize(texts)
    for path, tokens in zip(files, ids):
        if len(tokens) < 2:
            raise InputError(f"{path}: {len(tokens)} token(s) of text; the detector needs at least 2")
    return ids


def calibrate_files(human: Sequence[str | os.PathLike], machine: Sequence[str | os.PathLike],
                    out: str | os.PathLike, scoring_spec: str = "local", sampling_spec: str | None = None,
                    max_tokens: int = 512) -> Calibration:
    """Fit a Calibration on human-written and machine-generated documents and save it to `out`."""
    human_files, machine_files = expand_paths(human), expand_paths(machine)
    detector = Detector(scoring_spec, sampling_spec, max_tokens=max_tokens)
    human_parts = detector.score_parts(_read_all(human_files))
    machine_parts = detector.score_parts(_read_all(machine_files))
    models = models_label(scoring_spec, sampling_spec)
    calibration = Calibration.fit([p.criterion for p in human_parts], [p.criterion for p in machine_parts],
                                  [p.n_tokens for p in human_parts], [p.n_tokens for p in machine_parts],
                                  source=f"{len(human_files)} human + {len(machine_files)} machine files, "
                                         f"models {models}", model=models)
    calibration.save(out)
    return calibration
