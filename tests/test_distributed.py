"""`accelerate launch` with 2 CPU processes (gloo): DDP, and DeepSpeed ZeRO-3 when deepspeed is importable.

Each test runs a couple of SimPO steps on the tiny model through `python -m cycleresearcher.train.launch`,
exactly as the documented GPU command does, and checks that both ranks agree and the checkpoint loads.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cycleresearcher.schema import PreferencePair

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs" / "accelerate"


def _launch(tmp_path, tiny_model_dir, config: str, trainer: str, env_extra: dict) -> list[dict]:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(PreferencePair(
        prompt_id=f"p{i}", prompt=[{"role": "user", "content": f"Write about graph neural networks {i}."}],
        chosen="We propose a new method for graph neural networks.", rejected="Results results results.",
        chosen_score=6.0, rejected_score=3.0).to_dict()) + "\n" for i in range(4)))
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--config_file", str(CONFIGS / config), "-m", "cycleresearcher.train.launch",
           "simpo", "--model", str(tiny_model_dir), "--pairs", str(pairs), "--out", str(tmp_path / "ckpt"),
           "--set", "max_steps=2", "--set", "learning_rate=0.001", "--set", f"use_trl={trainer}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env_extra}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 2, proc.stdout[-2000:]
    return results


def _check(results, tmp_path, trainer):
    from transformers import AutoModelForCausalLM

    assert all(r["world_size"] == 2 and r["steps"] == 2 for r in results)
    assert {r["trainer"] for r in results} == {"native" if trainer == "never" else "trl"}
    # Same weights on both ranks after training: the end margins (measured on all pairs) agree.
    assert results[0]["mean_margin_end"] == pytest.approx(results[1]["mean_margin_end"], abs=1e-5)
    assert results[0]["mean_margin_end"] > results[0]["mean_margin_start"] + 0.5
    AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt")


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["never", "always"])
def test_ddp_two_cpu_processes(tmp_path, tiny_model_dir, trainer):
    # accelerate's MULTI_CPU launcher needs mpirun; the torchrun launcher + ACCELERATE_USE_CPU gives gloo DDP.
    results = _launch(tmp_path, tiny_model_dir, "multi_cpu_test.yaml", trainer, {"ACCELERATE_USE_CPU": "true"})
    _check(results, tmp_path, trainer)


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["never", "always"])
def test_zero3_two_cpu_processes(tmp_path, tiny_model_dir, trainer):
    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed is not installed (pip install --no-build-isolation 'cycleresearcher[deepspeed]')")
    # DeepSpeed JIT-builds a small CPU comm op on first use (minutes): keep the build in the repo's cache.
    ext = REPO / ".cache" / "torch_extensions"
    results = _launch(tmp_path, tiny_model_dir, "zero3_cpu_test.yaml", trainer, {"TORCH_EXTENSIONS_DIR": str(ext)})
    _check(results, tmp_path, trainer)
