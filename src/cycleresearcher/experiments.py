"""The experiment runner: a user's command runs a paper's setup, and its measured results replace the simulated ones.

    cycleresearcher research --topic T --out out/p1 --runner "python my_exp.py {setup} {results}"
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StepError
from .formats.paper import parse_paper, render_paper, render_results
from .io import write_json_atomic
from .schema import RESULTS_MEASURED, Paper

if TYPE_CHECKING:
    from .research import Researcher

class RunnerError(StepError):
    """The user's experiment command failed, timed out, or wrote no readable results."""


def run_experiments(command: str, paper: Paper, work_dir: Path, timeout: float = 3600.0) -> list[dict]:
    """Run `command` on the paper's setup and read measured results back.

    The command gets the setup path and the results path in the environment (CYCLERESEARCHER_SETUP,
    CYCLERESEARCHER_RESULTS) and as `{setup}` / `{results}` placeholders. It must write a JSON list of
    {"name", "result", "description"} to the results path. stdout/stderr are kept in runner.log.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    setup_path, results_path, log_path = work_dir / "setup.json", work_dir / "runner-results.json", work_dir / "runner.log"
    write_json_atomic(setup_path, paper.experimental_setup)
    results_path.unlink(missing_ok=True)
    argv = [a.replace("{setup}", str(setup_path)).replace("{results}", str(results_path))
            for a in shlex.split(command)]
    env = dict(os.environ, CYCLERESEARCHER_SETUP=str(setup_path), CYCLERESEARCHER_RESULTS=str(results_path))
    with open(log_path, "w", encoding="utf-8") as log_file:
        try:
            proc = subprocess.run(argv, cwd=work_dir, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RunnerError(f"experiment command timed out after {timeout:.0f} s; log: {log_path}") from exc
        except OSError as exc:
            raise RunnerError(f"could not run experiment command {argv[0]!r}: {exc}") from exc
    if proc.returncode != 0:
        raise RunnerError(f"experiment command exited with status {proc.returncode}; log: {log_path}")
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunnerError(f"experiment command wrote no JSON results to {results_path}: {exc}") from exc
    if not isinstance(results, list) or not all(isinstance(r, dict) and "name" in r for r in results):
        raise RunnerError(f"{results_path}: expected a JSON list of objects with a 'name'")
    return results


def conclude_with_results(researcher: "Researcher", paper: Paper, results: list[dict]) -> Paper:
    """Give measured results as message 4 and let the policy write message 5 (experiments and conclusion)."""
    paper.experimental_results = results
    paper.results_source = RESULTS_MEASURED
    prefix = [m for m in paper.messages if m["role"] != "assistant"][:2]
    conversation = prefix + [{"role": "assistant", "content": render_paper(paper)},
                             {"role": "user", "content": render_results(paper)}]
    completion = researcher.backend.chat(conversation, **researcher._options())
    parsed = parse_paper(render_paper(paper) + "\n\n" + render_results(paper) + "\n\n" + completion.text)
    paper.conclusion_latex = parsed.conclusion_latex
    paper.sections = parsed.sections
    paper.problems = [p for p in paper.problems if "experiment names differ" not in p]
    paper.provenance.completion_tokens += completion.completion_tokens
    paper.provenance.prompt_tokens += completion.prompt_tokens
    return paper
