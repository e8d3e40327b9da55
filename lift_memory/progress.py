"""Progress bars: on stderr when it is a terminal and progress is on; silent in logs, pipes and CI."""

from __future__ import annotations

import sys
from typing import Any


def bar(progress: bool, **kwargs: Any):
    """A ``tqdm`` bar; ``progress`` False, or stderr not a terminal, makes it silent (it still counts)."""
    from tqdm.auto import tqdm

    return tqdm(disable=None if progress else True, **kwargs)  # tqdm: None disables it off a terminal


def quiet_transformers(progress: bool) -> None:
    """Silence transformers' own bars (loading weights, GGUF conversion) by the same rule: unless ``progress``
    is on and stderr is a terminal. Never turns them on (a caller may have turned them off)."""
    if not (progress and sys.stderr.isatty()):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
