"""Evaluation: reviewer metrics with honest baselines and bootstrap intervals, and generated-paper scores.

    cycleresearcher eval reviewer --reviewer reward:runs/reward --data data/review --split test --out eval/
    cycleresearcher eval papers runs/demo --judge reward:runs/reward

    report = evaluate_reviewer(predictions, test_rows, train_rows, n_resamples=1000, seed=0, out_dir=Path("eval"))

`metrics` holds the pure metrics and the bootstrap; `reviewer` a judge's predictions against human reviewers
beside three baselines (DESIGN.md, "Evaluation that means something"): a constant (the train-set mean rating),
the single human reviewer (each reviewer left out against the others), and a length-only model; `papers` the
per-round scores of a cycle run's papers by a judge.
"""

from ..judges.baselines import Baselines, length_features, row_text
from .metrics import (DEFINITIONS, METRICS, Estimate, balanced_accuracy, bootstrap_ci, bootstrap_weights,
                      decision_accuracy, expected_calibration_error, fit_threshold, human_proxy_mae,
                      human_proxy_mse, macro_f1, mean_bias, proxy_errors, proxy_mae, proxy_mse, roc_auc, spearman,
                      weighted_mean)
from .papers import evaluate_papers
from .reviewer import (System, calibration_plot, evaluate_reviewer, evaluate_reviewer_spec, load_split,
                       prediction_of)

__all__ = ["Baselines", "DEFINITIONS", "METRICS", "Estimate", "System", "balanced_accuracy", "bootstrap_ci",
           "bootstrap_weights", "calibration_plot", "decision_accuracy", "evaluate_papers", "evaluate_reviewer",
           "evaluate_reviewer_spec", "expected_calibration_error", "fit_threshold", "human_proxy_mae",
           "human_proxy_mse", "length_features", "load_split", "macro_f1", "mean_bias", "prediction_of", "proxy_errors",
           "proxy_mae", "proxy_mse", "roc_auc", "row_text", "spearman", "weighted_mean"]
