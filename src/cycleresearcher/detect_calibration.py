"""Fast-DetectGPT's calibration: the logistic map from the criterion D to P(machine-generated), and the verdict.

A calibration is fitted for one pair of models (scoring / sampling): D has a different scale under another
model, so `model` records which, and `detect` warns when a calibration meets a model it was not fitted on.
Files written by `detect calibrate` are validated when read (finite numbers, a positive slope, known keys).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from . import limits
from .errors import InputError
from .io import write_json_atomic

_KEYS = {"slope", "intercept", "reference_tokens", "source", "model"}


def models_label(scoring_spec: str, sampling_spec: str | None = None) -> str:
    """How a calibration names the models it was fitted with: "local", or "scoring / sampling"."""
    return scoring_spec if sampling_spec in (None, scoring_spec) else f"{scoring_spec} / {sampling_spec}"


@dataclass(frozen=True)
class Calibration:
    """Logistic map from D to P(machine-generated) = sigmoid(slope * D' + intercept).

    D' rescales D to `reference_tokens`: for a fixed per-token discrepancy D grows like sqrt(n), so a long
    paper scored with a map fitted on short texts would look machine-made whatever it is. Texts longer than
    the reference are scaled by sqrt(reference_tokens / n); shorter ones are left alone, which keeps their
    noisier D from being amplified. reference_tokens None turns the rescaling off. `model` is the models_label
    of the models it was fitted with ("" when unknown).
    """

    slope: float
    intercept: float
    reference_tokens: int | None = None
    source: str = ""
    model: str = ""

    def __post_init__(self) -> None:
        for name in ("slope", "intercept"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"calibration {name} must be a finite number, got {value!r}")
        if self.slope <= 0:
            raise InputError(f"calibration slope must be positive, got {self.slope}")
        ref = self.reference_tokens
        if ref is not None and (isinstance(ref, bool) or not isinstance(ref, int) or ref < 1):
            raise InputError(f"calibration reference_tokens must be a positive whole number, got {ref!r}")
        if not isinstance(self.source, str) or not isinstance(self.model, str):
            raise InputError("calibration source and model must be text")

    def adjusted(self, criterion: float, n_tokens: int | None = None) -> float:
        if self.reference_tokens and n_tokens and n_tokens > self.reference_tokens:
            return criterion * math.sqrt(self.reference_tokens / n_tokens)
        return criterion

    def probability(self, criterion: float, n_tokens: int | None = None) -> float:
        """P(machine-generated) for a criterion value (of a text of n_tokens scored tokens); NaN for a NaN D."""
        z = self.slope * self.adjusted(criterion, n_tokens) + self.intercept
        if math.isnan(z):
            return math.nan
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    @property
    def threshold(self) -> float:
        """The (reference-length) criterion where the probability crosses 0.5."""
        return -self.intercept / self.slope

    def mismatch(self, scoring_spec: str, sampling_spec: str | None = None) -> str:
        """A warning when this calibration was fitted on other models than these ("" when they match)."""
        used = models_label(scoring_spec, sampling_spec)
        if not self.model:
            return (f"the calibration ({self.source or 'no source'}) does not record its models; its "
                    f"probabilities may not fit {used!r}")
        if self.model != used:
            return (f"the calibration was fitted on {self.model!r}, not {used!r}: its probabilities do not "
                    f"transfer; fit one with `cycleresearcher detect calibrate`")
        return ""

    @classmethod
    def fit(cls, human_scores: Sequence[float], machine_scores: Sequence[float],
            human_tokens: Sequence[int] | None = None, machine_tokens: Sequence[int] | None = None,
            source: str = "", model: str = "") -> "Calibration":
        """Fit the logistic map by maximum likelihood (scikit-learn, weak L2 so separable data stays finite).

        With token counts, the reference length is their median and longer texts are rescaled to it first.
        """
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        human, machine = list(map(float, human_scores)), list(map(float, machine_scores))
        if len(human) < 2 or len(machine) < 2:
            raise InputError(f"calibration needs at least 2 human and 2 machine texts, got "
                             f"{len(human)} and {len(machine)}")
        if not all(math.isfinite(s) for s in human + machine):
            raise InputError("calibration scores must be finite numbers")
        reference = None
        if human_tokens is not None and machine_tokens is not None:
            if len(human_tokens) != len(human) or len(machine_tokens) != len(machine):
                raise InputError("token counts must match the scores one to one")
            reference = int(np.median(list(human_tokens) + list(machine_tokens)))
            probe = cls(1.0, 0.0, reference)
            human = [probe.adjusted(s, n) for s, n in zip(human, human_tokens)]
            machine = [probe.adjusted(s, n) for s, n in zip(machine, machine_tokens)]
        x = np.array(human + machine).reshape(-1, 1)
        y = np.array([0] * len(human) + [1] * len(machine))
        fitted = LogisticRegression(C=100.0).fit(x, y)
        slope, intercept = float(fitted.coef_[0, 0]), float(fitted.intercept_[0])
        if slope <= 0:
            raise InputError(f"machine texts do not score higher than human ones (mean D {np.mean(machine):.2f}"
                             f" vs {np.mean(human):.2f}); a calibration would invert the detector")
        return cls(slope, intercept, reference, source or f"fit on {len(human)} human + {len(machine)} machine",
                   model)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "Calibration":
        """A calibration from parsed JSON; InputError naming what is wrong (keys, types, non-finite values)."""
        if not isinstance(data, dict):
            raise InputError("a calibration is a JSON object")
        unknown = set(data) - _KEYS
        if unknown or "slope" not in data or "intercept" not in data:
            raise InputError(f"not a calibration: needs slope and intercept, unknown keys {sorted(map(str, unknown))}")
        ref = data.get("reference_tokens")
        if isinstance(ref, float) and ref.is_integer():
            ref = int(ref)
        return cls(data["slope"], data["intercept"], ref, data.get("source", ""), data.get("model", ""))

    def save(self, path: str | os.PathLike) -> Path:
        return write_json_atomic(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        """Read and validate a calibration file; errors name the file."""
        data = limits.read_json_file(Path(path), "calibration file")
        try:
            return cls.from_dict(data)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None


# Fitted by `bench/detect.py` (seed 0): the embedded SmolLM2-135M as sampling and scoring model; 30 ICLR 2017/18
# abstracts + 10 NeurIPS 2025 introductions vs 40 SmolLM2 texts prompted with the same titles, every text cut to
# its first 120 tokens (119 scored). Mean D there: human -2.51, machine 2.77; AUROC 0.996; threshold D = 0.25.
# It only fits texts from (and scored by) the embedded model: refit with `cycleresearcher detect calibrate`
# whenever either model changes or the texts come from another generator.
DEFAULT_CALIBRATION = Calibration(slope=2.0829, intercept=-0.5309, reference_tokens=119,
                                  source="bench/detect.py: SmolLM2-135M white-box, 40+40 texts of 120 tokens",
                                  model="local")


def verdict(probability: float, threshold: float = 0.5) -> str:
    """'machine' at or above the threshold, 'human' below it, 'undetermined' for a NaN probability."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability, got {threshold}")
    if math.isnan(probability):
        return "undetermined"
    return "machine" if probability >= threshold else "human"
