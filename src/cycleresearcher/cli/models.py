"""`cycleresearcher generate`: a quick check of any backend.

    cycleresearcher generate --backend local "Write an abstract about graph neural networks"
    cycleresearcher generate --backend openai:gpt-4o-mini@http://localhost:8000/v1 --n 2 --json "Say hi"
"""

from __future__ import annotations

import json
from typing import Optional

import typer

from .app import app
from .common import clean_errors, err_console
from .output import write_plain


@app.command()
def generate(
    prompt: str = typer.Argument(..., help="User message to send."),
    backend: str = typer.Option("local", "--backend", "-b",
                                help="Backend spec: local, hf:PATH, openai:MODEL[@URL], vllm:PATH[?tp=N], fake."),
    system: Optional[str] = typer.Option(None, "--system", help="System message (default: the model's own)."),
    n: int = typer.Option(1, "--n", help="Number of samples."),
    temperature: float = typer.Option(0.0, "--temperature", "-t", help="0 is greedy; 0.4-1.0 samples."),
    top_p: float = typer.Option(0.95, "--top-p", help="Nucleus sampling mass, in (0, 1]."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", "-m", help="Most tokens to generate per sample."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for reproducible sampling."),
    stop: Optional[list[str]] = typer.Option(None, "--stop", help="Stop string (repeat for several)."),
    as_json: bool = typer.Option(False, "--json", help="Print completions and usage as JSON."),
    progress: bool = typer.Option(False, "--progress", help="Show a progress bar."),
):
    """Generate a reply from a backend: the text exactly on stdout; usage (tokens, seconds, tokens/s) on stderr."""
    from ..backends import get_backend
    from ..schema import GenerationRequest

    with clean_errors():
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        request = GenerationRequest(messages=messages, n=n, temperature=temperature, top_p=top_p,
                                    max_new_tokens=max_new_tokens, seed=seed, stop=list(stop or []),
                                    stage="generate")
        model = get_backend(backend)
        completions = model.generate([request], progress=progress)[0]

    usage = model.usage.to_dict().get("generate", {})
    if as_json:
        write_plain(json.dumps({"completions": [c.to_dict() for c in completions], "usage": usage},
                               ensure_ascii=False, indent=2) + "\n")
    else:
        # The model's text exactly, one newline after each sample: rich would wrap it at the terminal width.
        for i, c in enumerate(completions):
            if len(completions) > 1:
                write_plain(f"--- sample {i + 1} ({c.finish_reason}) ---\n")
            write_plain(c.text + "\n")
    made = sum(c.completion_tokens for c in completions)
    seconds = usage.get("seconds", 0.0)
    err_console.print(f"[dim]{model.spec}: {usage.get('prompt_tokens', 0)} prompt + {made} completion tokens, "
                      f"{seconds:.1f} s, {made / seconds if seconds else 0:.1f} tokens/s[/dim]")
