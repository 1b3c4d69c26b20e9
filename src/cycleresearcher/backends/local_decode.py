"""Decoding helpers of the local backend: a progress bar that moves with every token, and a stop for samples
that have started repeating themselves.

Small models fall into loops ("The goal of this paper is ... The goal of this paper is ..."): the embedded
135M model writes 250-400 useful tokens of a paper and then repeats a paragraph until max_new_tokens, which on
a CPU is minutes of text nobody can use. `LoopStop` ends a row once its last `span` tokens repeat an earlier
span of the same row word for word, and the completion is cut where the repetition began.
"""

from __future__ import annotations

from typing import Optional


def token_bar(batches: list[list], progress: bool, desc: str):
    """A bar over generated tokens (all rows): its rate is tokens/s; its total is the most the batches can
    make (rows x max_new_tokens), lowered as rows stop, so the ETA is an upper bound."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    total = sum(len(batch) * batch[0].max_new_tokens for batch in batches)
    return tqdm(total=total, desc=desc, unit="tok", dynamic_ncols=True)


def progress_streamer(bar, rows: int, stop_ids: frozenset[int]):
    """A `generate` streamer that moves `bar` by the number of rows still generating at each step."""
    from transformers.generation.streamers import BaseStreamer

    class _Progress(BaseStreamer):
        def __init__(self) -> None:
            self.prompt_seen = False
            self.done = [False] * rows
            self.counted = 0  # tokens generated so far (a row's stop token included)

        def put(self, value) -> None:
            if not self.prompt_seen:  # generate hands over the prompt first
                self.prompt_seen = True
                return
            step = 0
            for i, token in enumerate(value.reshape(-1).tolist()[:rows]):
                if not self.done[i]:
                    step += 1
                    self.done[i] = token in stop_ids
            self.counted += step
            bar.update(step)

        def end(self) -> None:
            pass

    return _Progress()


def loop_stop(prompt_width: int, rows: int, span: int, end_ids: frozenset[int]):
    """A transformers StoppingCriteria: row i stops once its last `span` generated tokens equal an earlier
    `span`-token window of its own; `.cut[i]` is then the number of tokens before the repeated copy."""
    import torch
    from transformers import StoppingCriteria

    class LoopStop(StoppingCriteria):
        def __init__(self) -> None:
            self.seen: list[set] = [set() for _ in range(rows)]
            self.cut: list[Optional[int]] = [None] * rows
            self.ended = [False] * rows

        def __call__(self, input_ids, scores, **kwargs):
            generated = input_ids.shape[1] - prompt_width
            done = torch.tensor([c is not None for c in self.cut], dtype=torch.bool, device=input_ids.device)
            if generated < span:
                return done
            windows = input_ids[:, input_ids.shape[1] - span:].tolist()
            for i, window in enumerate(windows):
                if self.cut[i] is not None or self.ended[i]:
                    continue
                if window[-1] in end_ids:  # finished (EOS, or padding after a stop string): nothing to check
                    self.ended[i] = True
                    continue
                key = tuple(window)
                if key in self.seen[i]:
                    self.cut[i] = generated - span
                    done[i] = True
                else:
                    self.seen[i].add(key)
            return done

    return LoopStop()
