"""Hand-made features of a cleaned paper: what it contains (structure) and whether it reads like a paper
(integrity). All are cheap (regular expressions and counting, about 10 ms a paper).

    names, values = STRUCTURE + INTEGRITY, paper_features(clean_text, bigrams)

Structure: sections, subsections, display and inline math, tables, figures, theorem-like statements, citations,
an experiments section and the numbers in it, related work / conclusion / limitations sections, abstract length.
Integrity: repeated sentences and 8-grams, compressibility, the share of word pairs that are common in real
papers (word salad has few), lexical cohesion of neighbouring sentences against random pairs (shuffled
sentences have none), sentence length. Integrity features also drive the guard in `model.py`: a text whose
statistics fall outside what real papers show is penalised, however the learned part scores it.
The accept head (fit.py) reads both groups plus two lengths of the text as given (`accept_features`).
"""

from __future__ import annotations

import math
import random
import re
import zlib
from collections import Counter
from typing import Iterable, Optional, Sequence

import numpy as np

from .text import headings, sentences

STRUCTURE = ("log_words", "log_sections", "log_subsections", "display_math_per_kw", "inline_math_per_kw",
             "log_tables", "log_figures", "log_theorems", "citations_per_kw", "log_max_citation",
             "has_experiments", "experiment_numbers_per_kw", "has_related_work", "has_conclusion",
             "has_limitations", "log_abstract_words")
INTEGRITY = ("repeated_sentences", "repeated_8grams", "compression_ratio", "bigram_hit_rate", "cohesion_ratio",
             "mean_sentence_words")
# The direction in which each integrity feature says "degenerate text" (-1: low values are bad), and the words
# used to say why in a verdict.
GUARD_DIRECTIONS = {"repeated_sentences": +1, "repeated_8grams": +1, "compression_ratio": -1,
                    "bigram_hit_rate": -1, "cohesion_ratio": -1}

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_CONTENT_MIN = 4  # letters: shorter words are mostly function words, useless for cohesion
_DISPLAY_MATH = re.compile(r"\$\$|\\\[|\\begin\{(?:equation|align|gather|multline|eqnarray)\*?\}")
_INLINE_MATH = re.compile(r"\\\(|(?<![\\$])\$(?!\$)")
_TABLE = re.compile(r"\bTable\s+(\d+)|\\begin\{table")
_FIGURE = re.compile(r"\b(?:Figure|Fig\.)\s+(\d+)|\\begin\{figure")
_THEOREM = re.compile(r"\b(Theorem|Lemma|Proposition|Corollary|Definition|Assumption)\s+(\d+(?:\.\d+)?)|"
                      r"\\begin\{(?:theorem|lemma|proposition|corollary|definition|assumption)\}")
_NUM_CITE = re.compile(r"\[(\d{1,3}(?:\s*[,;–-]\s*\d{1,3})*)\]")
_AUTHOR_CITE = re.compile(r"\(\s*[A-Z][A-Za-z'-]+(?: et al\.| and [A-Z][A-Za-z'-]+)?,? (?:19|20)\d\d[a-z]?")
_DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+%?|\b\d{1,3}%")
_EXPERIMENT_HEAD = re.compile(r"experiment|evaluation|empirical|results|benchmark", re.I)
_RELATED_HEAD = re.compile(r"related work|prior work|background|literature", re.I)
_CONCLUSION_HEAD = re.compile(r"conclu|discussion|summary", re.I)
_LIMITATION_HEAD = re.compile(r"limitation", re.I)
_NUMBERED = re.compile(r"^\d+\s+\S")
_SUBNUMBERED = re.compile(r"^\d+\.\d+")


def _log(x: float) -> float:
    return math.log1p(max(0.0, x))


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _section_text(text: str, head: re.Pattern) -> str:
    """Text under every heading matching `head`, up to the next heading."""
    parts = re.split(r"^(#{1,6}[^\n]*)$", text, flags=re.M)
    out, take = [], False
    for part in parts:
        if part.startswith("#"):
            take = bool(head.search(part))
        elif take:
            out.append(part)
    return "\n".join(out)


def _abstract(text: str) -> str:
    m = re.search(r"^#{1,6}\s*abstract\s*$", text, re.I | re.M)
    if not m:
        return ""
    rest = text[m.end():]
    nxt = re.search(r"^#", rest, re.M)
    return rest[:nxt.start()] if nxt else rest[:3000]


def structure_features(text: str) -> list[float]:
    """Values in the order of STRUCTURE for a cleaned text."""
    n_words = len(text.split())
    kw = max(n_words, 100) / 1000.0
    heads = headings(text)
    body_heads = [h for h in heads if not re.match(r"abstract$", h, re.I)]
    numbered = sum(bool(_NUMBERED.match(h)) for h in body_heads)
    sub = sum(bool(_SUBNUMBERED.match(h)) for h in body_heads)
    top = numbered or len([m for m in re.finditer(r"^##\s", text, re.M)]) - (1 if _abstract(text) else 0)
    subs = sub or len(re.findall(r"^###+\s", text, re.M))
    tables = {m.group(1) or f"env{i}" for i, m in enumerate(_TABLE.finditer(text))}
    figures = {m.group(1) or f"env{i}" for i, m in enumerate(_FIGURE.finditer(text))}
    theorems = {m.group(0) if m.group(2) else f"env{i}" for i, m in enumerate(_THEOREM.finditer(text))}
    num_cites = _NUM_CITE.findall(text)
    cite_ids = [int(x) for c in num_cites for x in re.findall(r"\d+", c)]
    n_cites = len(num_cites) + len(_AUTHOR_CITE.findall(text))
    exp = _section_text(text, _EXPERIMENT_HEAD)
    exp_words = max(len(exp.split()), 100) / 1000.0
    return [
        _log(n_words), _log(max(top, 0)), _log(subs),
        len(_DISPLAY_MATH.findall(text)) / kw, len(_INLINE_MATH.findall(text)) / 2 / kw,
        _log(len(tables)), _log(len(figures)), _log(len(theorems)),
        n_cites / kw, _log(max(cite_ids, default=0) if max(cite_ids, default=0) < 400 else 0),
        float(bool(exp.strip())), len(_DECIMAL.findall(exp)) / exp_words if exp.strip() else 0.0,
        float(any(_RELATED_HEAD.search(h) for h in heads)), float(any(_CONCLUSION_HEAD.search(h) for h in heads)),
        float(any(_LIMITATION_HEAD.search(h) for h in heads)), _log(len(_abstract(text).split())),
    ]


# ---- integrity ------------------------------------------------------------------------------------------------

def common_bigrams(texts: Iterable[str], size: int = 30000) -> frozenset[str]:
    """The `size` most frequent lower-cased word pairs of `texts` ("of the", "in this", ...): the fluency table."""
    counts: Counter = Counter()
    for t in texts:
        w = words(t)
        counts.update(f"{a} {b}" for a, b in zip(w, w[1:]))
    return frozenset(k for k, _ in counts.most_common(size))


def _cohesion(sent_words: Sequence[list[str]], rng: random.Random, max_pairs: int = 1000) -> float:
    """Mean content-word Jaccard overlap of neighbouring sentences divided by that of random sentence pairs of
    the same text: about 1 for shuffled sentences, higher for real prose (sentences continue each other)."""
    sets = [{w for w in ws if len(w) >= _CONTENT_MIN} for ws in sent_words]
    sets = [s for s in sets if s]
    n = len(sets)
    if n < 6:
        return 1.0

    def jac(a: set, b: set) -> float:
        return len(a & b) / len(a | b)

    idx = range(n - 1) if n - 1 <= max_pairs else sorted(rng.sample(range(n - 1), max_pairs))
    adjacent = float(np.mean([jac(sets[i], sets[i + 1]) for i in idx]))
    pairs = [(rng.randrange(n), rng.randrange(n)) for _ in range(max_pairs)]
    far = [jac(sets[i], sets[j]) for i, j in pairs if abs(i - j) > 2]
    base = float(np.mean(far)) if far else adjacent
    return (adjacent + 0.01) / (base + 0.01)  # + 0.01: no blow-up on texts with almost no overlap


def integrity_features(text: str, bigrams: Optional[frozenset[str]] = None, seed: int = 0) -> list[float]:
    """Values in the order of INTEGRITY for a cleaned text (bigram_hit_rate is 0 without a bigram table)."""
    sents = sentences(text)
    sent_words = [words(s) for s in sents]
    normalized = [" ".join(ws) for ws in sent_words if ws]
    repeated = 1 - len(set(normalized)) / len(normalized) if normalized else 0.0
    w = words(text)
    n_grams = max(len(w) - 7, 0)
    counts = Counter(zip(*(w[k:k + n_grams] for k in range(8)))) if n_grams else Counter()
    rep8 = sum(c for c in counts.values() if c > 1) / n_grams if n_grams else 0.0
    raw = " ".join(text.split()).encode("utf-8")[:200_000]
    ratio = len(zlib.compress(raw, 6)) / len(raw) if len(raw) > 200 else 0.5
    if bigrams and len(w) > 1:
        pairs = [f"{a} {b}" for a, b in zip(w, w[1:])]
        hit = sum(p in bigrams for p in pairs) / len(pairs)
    else:
        hit = 0.0
    cohesion = _cohesion(sent_words, random.Random(seed))
    mean_len = float(np.mean([len(s.split()) for s in sents])) if sents else 0.0
    return [repeated, rep8, ratio, hit, cohesion, math.log1p(mean_len)]


def paper_features(text: str, bigrams: Optional[frozenset[str]] = None) -> np.ndarray:
    """(len(STRUCTURE) + len(INTEGRITY),) for a cleaned text."""
    return np.asarray(structure_features(text) + integrity_features(text, bigrams), dtype=float)


# ---- the feature matrix ---------------------------------------------------------------------------------------

EMBED_STATS = ("chunk_adjacent_cos", "chunk_to_first_cos", "chunk_mean_norm")
FEATURE_VERSION = 2  # bump when a feature's definition changes: cached hand features are keyed by it


def embedding_features(chunks: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """(384,) normalised mean of a paper's chunk embeddings, and EMBED_STATS: how alike neighbouring chunks
    are, how alike each chunk is to the first (title and abstract), and the norm of the plain mean (1 when
    every chunk says the same thing, lower when they wander)."""
    c = np.asarray(chunks, dtype=float)
    mean = c.mean(0)
    norm = float(np.linalg.norm(mean))
    if len(c) < 2:
        return mean / max(norm, 1e-12), [1.0, 1.0, norm]
    adjacent = float(np.mean(np.sum(c[1:] * c[:-1], axis=1)))
    to_first = float(np.mean(c[1:] @ c[0]))
    return mean / max(norm, 1e-12), [adjacent, to_first, norm]


def _hand_key(text: str, table_id: str) -> str:
    import hashlib

    return hashlib.sha256(f"v{FEATURE_VERSION}\0{table_id}\0{text}".encode("utf-8")).hexdigest()


def hand_features(texts: Sequence[str], bigrams: Optional[frozenset[str]], table_id: str = "",
                  cache_dir=None) -> np.ndarray:
    """(n, len(STRUCTURE) + len(INTEGRITY)) for cleaned texts, cached per text under `cache_dir` when given
    (training reads the same 9k papers on every run; scoring new papers passes no cache)."""
    from pathlib import Path

    out = np.zeros((len(texts), len(STRUCTURE) + len(INTEGRITY)))
    for i, t in enumerate(texts):
        path = None
        if cache_dir is not None:
            key = _hand_key(t, table_id)
            path = Path(cache_dir) / key[:2] / f"{key}.npy"
            if path.exists():
                try:
                    vec = np.load(path, allow_pickle=False)
                    if vec.shape == out.shape[1:]:
                        out[i] = vec
                        continue
                except (OSError, ValueError):
                    pass
        out[i] = paper_features(t, bigrams)
        if path is not None:
            import io as _bytes

            from ..io import write_bytes_atomic

            buffer = _bytes.BytesIO()
            np.save(buffer, out[i], allow_pickle=False)
            write_bytes_atomic(path, buffer.getvalue())
    return out


# ---- what the accept head reads (model.py / fit.py) -------------------------------------------------------

ACCEPT_LENGTH = ("log_raw_words", "log_tail_words")


def accept_features(hand: np.ndarray, raw_words: Sequence[int]) -> np.ndarray:
    """What the accept head reads: the hand features (STRUCTURE + INTEGRITY) and ACCEPT_LENGTH, the log word
    count of the whole text as given and of what the cleaning cut after the main body (appendix, references)."""
    raw = np.asarray(raw_words, dtype=float)
    body = np.expm1(hand[:, list(STRUCTURE).index("log_words")])
    return np.column_stack([hand, np.log1p(raw), np.log1p(np.maximum(0.0, raw - body))])


def clip_lengths(xa: np.ndarray, floor: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """A copy of accept_features rows with the length columns clipped to [floor, cap] (see fit_accept_head)."""
    x = np.array(xa, dtype=float)
    cols = length_columns()
    x[:, cols] = np.clip(x[:, cols], floor, cap)
    return x


def length_columns() -> list[int]:
    """Columns of accept_features that measure length (clipped at the training cap)."""
    names = list(STRUCTURE) + list(INTEGRITY) + list(ACCEPT_LENGTH)
    return [names.index(n) for n in ("log_words",) + ACCEPT_LENGTH]
