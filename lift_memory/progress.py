"""Progress bars: on stderr when it is a terminal and progress is on; silent in logs, pipes and CI.

``LIFT_MEMORY_PROGRESS=always`` shows them off a terminal too (a log file that should show progress);
``never`` hides them everywhere; ``auto`` (the default) decides by the terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any


def _shown(progress: bool) -> bool | None:
    """True: show; False: hide; None: show only on a terminal (tqdm's own rule)."""
    mode = os.environ.get("LIFT_MEMORY_PROGRESS", "auto").strip().lower()
    if not progress or mode == "never":
        return False
    return True if mode == "always" else None


def bar(progress: bool, **kwargs: Any):
    """A ``tqdm`` bar; ``progress`` False, or stderr not a terminal, makes it silent (it still counts)."""
    from tqdm.auto import tqdm

    shown = _shown(progress)
    return tqdm(disable=None if shown is None else not shown, **kwargs)  # tqdm: None disables it off a terminal


@contextlib.contextmanager
def quiet_transformers(progress: bool) -> Iterator[None]:
    """Within the block, silence transformers' own bars (loading weights, GGUF conversion) by the same rule; the
    process's setting comes back after it. Never turns them on (a caller may have turned them off)."""
    from transformers.utils import logging as hf_logging

    shown = _shown(progress)
    was_enabled = hf_logging.is_progress_bar_enabled()
    quiet = was_enabled and (shown is False or (shown is None and not sys.stderr.isatty()))
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet:
            hf_logging.enable_progress_bar()
