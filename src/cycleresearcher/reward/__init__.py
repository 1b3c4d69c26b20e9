"""The scalar reward model (see model.py); the text it reads (text.py) and its features (features.py)."""

from .legacy import (RewardConfig, RewardModel, RewardModelError, _item_text, cheap_features, compose_text,  # noqa: F401
                     default_model_dir, paper_text, reward_of)
