"""The scalar reward model: reads a paper's cleaned main body, returns a predicted mean rating and accept
probability that rank real papers and fall for degenerate text.

    from cycleresearcher.reward import RewardModel
    model = RewardModel.load(default_reward_dir())      # see data.fulltext.ensure_default_reward_model
    model.score(papers)                                 # [{"reward", "accept_prob", "percentile", ...}]

Modules: text.py (what the model reads, camera-ready cues removed), features.py (structure and integrity
statistics, embedding pooling), fit.py (within-group ranking, guard, rating map, accept head), model.py
(scoring, files), probe.py (the hacking suite), leak.py (the camera-ready leak probe), stats.py.
"""

from .model import (RewardConfig, RewardModel, RewardModelError, default_reward_dir, featurize,  # noqa: F401
                    packaged_reward_dir, reward_of, stage_problems)
from .text import clean_paper_text, compose_text, item_text, paper_text  # noqa: F401

_item_text = item_text  # the name older callers import
default_model_dir = default_reward_dir
