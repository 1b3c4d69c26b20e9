"""Run SFT or SimPO from files: the library entry for the CLI, and a script for `accelerate launch`.

    python -m cycleresearcher.train.launch simpo --model local --pairs pairs.jsonl --out ckpt --set epochs=2
    accelerate launch --config_file configs/accelerate/zero3.yaml -m cycleresearcher.train.launch \\
        simpo --model /models/policy --pairs runs/x/round-00/pairs.jsonl --out ckpt --set bf16=true
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml -m cycleresearcher.train.launch \\
        sft --model /models/base --data data/research --out ckpt/researcher-sft --set lora=true

Each process runs the same command; accelerate (and DeepSpeed, when its config asks for it) shards the data
and the weights, and only the main process writes the checkpoint. Prints the metrics as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import logging
import sys
from pathlib import Path
from typing import Any, Optional, TypeVar

from ..schema import PreferencePair
from ._config import ConfigError, StrictConfig
from .sft_config import SFTConfigLite
from .simpo_config import SimPOConfig

log = logging.getLogger(__name__)
C = TypeVar("C", bound=StrictConfig)


def load_pairs(path: Path) -> list[PreferencePair]:
    """Preference pairs from a JSONL file (one PreferencePair dict per line; blank lines skipped)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"pairs file {path} does not exist")
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            pairs.append(PreferencePair.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{path}:{n}: not a preference pair: {exc}") from exc
    return pairs


def load_config(cls: type[C], path: Optional[Path] = None, overrides: Optional[dict[str, Any]] = None) -> C:
    """A config from a YAML/JSON file (or the defaults) with `overrides` on top; unknown keys are errors."""
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of config keys")
        data.update(loaded)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return cls.from_dict(data)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """["beta=2.5", "lora=true"] -> {"beta": 2.5, "lora": True} (values read as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set wants KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def simpo_from_files(model: str, pairs_path: Path, out: Path, config: SimPOConfig) -> dict[str, Any]:
    """`train_simpo` on the pairs in a JSONL file."""
    from .simpo import train_simpo

    return train_simpo(model, load_pairs(pairs_path), Path(out), config)


def load_sft_data(data_dir: Path, split: str = "train"):
    """A Dataset saved with `save_to_disk` (a DatasetDict gives its `split`)."""
    from datasets import DatasetDict, load_from_disk

    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise FileNotFoundError(f"data set folder {data_dir} does not exist")
    data = load_from_disk(str(data_dir))
    if isinstance(data, DatasetDict):
        if split not in data:
            raise ValueError(f"{data_dir} has splits {sorted(data)}, not {split!r}")
        data = data[split]
    return data


def sft_from_disk(model: str, data_dir: Path, out: Path, config: SFTConfigLite, split: str = "train") -> dict:
    """`train_sft` on a data set folder written by `cycleresearcher dataset ...`."""
    from .sft import train_sft

    return train_sft(model, load_sft_data(data_dir, split), Path(out), config)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cycleresearcher.train.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True)
    for stage in ("simpo", "sft"):
        p = sub.add_parser(stage)
        p.add_argument("--model", required=True, help="local, a model folder, a .gguf file, or hf:FOLDER")
        p.add_argument("--out", required=True, type=Path, help="checkpoint folder to write")
        p.add_argument("--config", type=Path, help="YAML/JSON file of config keys")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one config key")
        if stage == "simpo":
            p.add_argument("--pairs", required=True, type=Path, help="pairs.jsonl")
        else:
            p.add_argument("--data", required=True, type=Path, help="data set folder (load_from_disk)")
            p.add_argument("--split", default="train")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.stage == "simpo":
            cfg = load_config(SimPOConfig, args.config, parse_sets(args.set))
            metrics = simpo_from_files(args.model, args.pairs, args.out, cfg)
        else:
            sft_cfg = load_config(SFTConfigLite, args.config, parse_sets(args.set))
            metrics = sft_from_disk(args.model, args.data, args.out, sft_cfg, args.split)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # One write(2) per rank: two ranks share stdout, and a print can interleave with the other rank's line.
    os.write(1, (json.dumps(metrics) + "\n").encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
