"""Datasets from peer-review sources: OpenReview, arXiv LaTeX sources, PeerRead and local dumps.

Every source yields `PaperRecord`s (normalize.py); `build.py` turns them into the Review dataset (papers with
their human review sets, for the reviewer) and the Research dataset (papers in the research-stage format, for
the policy), saved as Hugging Face DatasetDicts.
"""

from .normalize import PaperRecord

__all__ = ["PaperRecord"]
