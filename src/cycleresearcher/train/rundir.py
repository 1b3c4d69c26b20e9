"""The run directory of a cycle (DESIGN.md): where each file lives, the saved config, the prompts file reader.

    runs/<name>/config.yaml            the resolved config (a resumed run uses it)
    runs/<name>/prompts.jsonl          the prompts (topic, messages) every round samples from
    runs/<name>/round-00/papers.jsonl  one Paper per line (prompt id, sample index)
    runs/<name>/round-00/reviews.jsonl one line per paper: reward, its source and the judge's Verdict
    runs/<name>/round-00/pairs.jsonl   PreferencePairs (highest vs lowest reward per prompt)
    runs/<name>/round-00/checkpoint/   policy after this round (renamed into place when complete)
    runs/<name>/round-00/train.json    what training reported (with the checkpoint: training is done)
    runs/<name>/round-00/metrics.json  written last: its presence marks the round done

Lines are appended and fsynced through cycleresearcher.io, so a crash loses at most the batch in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from ..errors import InputError
from ..io import read_jsonl, write_text_atomic


@dataclass
class RunDir:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def prompts_path(self) -> Path:
        return self.root / "prompts.jsonl"

    def round_dir(self, r: int) -> Path:
        return self.root / f"round-{r:02d}"

    def file(self, r: int, name: str) -> Path:
        """round-XX/<name>: papers.jsonl, reviews.jsonl, pairs.jsonl, metrics.json, train.json, ..."""
        return self.round_dir(r) / name

    def done(self, r: int) -> bool:
        return self.file(r, "metrics.json").exists()

    def checkpoint(self, r: int) -> Path:
        return self.round_dir(r) / "checkpoint"

    def rounds(self) -> list[int]:
        """Indices of the round folders present, in order."""
        out = []
        for p in self.root.glob("round-*"):
            suffix = p.name.partition("-")[2]
            if p.is_dir() and suffix.isdigit():
                out.append(int(suffix))
        return sorted(out)

    def heldout_dir(self, label: str) -> Path:
        """heldout/<label>: `initial`, `r00`, ... (see train/heldout.py)."""
        return self.root / "heldout" / label

    def heldout_labels(self) -> list[str]:
        root = self.root / "heldout"
        return sorted((p.name for p in root.glob("*") if p.is_dir()), key=label_order) if root.exists() else []

    def read_config(self) -> Optional[dict[str, Any]]:
        if not self.config_path.exists():
            return None
        try:
            data = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise InputError(f"{self.config_path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError(f"{self.config_path} must hold a mapping of config keys")
        return data

    def write_config(self, data: dict[str, Any]) -> None:
        write_text_atomic(self.config_path, yaml.safe_dump(data, sort_keys=False))


def label_order(label: str) -> tuple[int, int]:
    """Held-out labels in time order: `initial` first, then r00, r01, ..."""
    return (0, 0) if label == "initial" else (1, int(label[1:]) if label[1:].isdigit() else 10 ** 6)


def load_prompt_file(path: Path) -> list[dict]:
    """[{id, topic}] from topics.txt (one topic per line, # comments) or JSONL with a topic field."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"prompts file not found: {path}" if not path.exists() else f"prompts file is not a file: {path}")
    if path.suffix == ".jsonl":
        rows = read_jsonl(path)
        out = []
        for n, row in enumerate(rows):
            if not isinstance(row, dict) or not isinstance(row.get("topic"), str) or not row["topic"].strip():
                raise InputError(f"{path}:{n + 1}: each line needs a 'topic' string")
            out.append({"id": str(row.get("id", f"p{n:03d}")), "topic": row["topic"].strip()})
        if not out:
            raise InputError(f"{path} holds no prompts")
        return out
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (a topics file has one topic per line)") from exc
    topics = [t.strip() for t in text.splitlines()]
    topics = [t for t in topics if t and not t.startswith("#")]
    if not topics:
        raise InputError(f"{path} holds no topics")
    if "\x00" in text:
        raise InputError(f"{path} is a binary file, not a topics file")
    return [{"id": f"p{n:03d}", "topic": t} for n, t in enumerate(topics)]
