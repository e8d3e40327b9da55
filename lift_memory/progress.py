"""Progress bars: on stderr when it is a terminal and progress is on; silent in logs, pipes and CI.

``LIFT_MEMORY_PROGRESS=always`` shows them off a terminal too (a log file that should show progress);
``never`` hides them everywhere; ``auto`` (the default) decides by the terminal.
"""

from __future__ import annotations

import os
import sys
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


def quiet_transformers(progress: bool) -> None:
    """Silence transformers' own bars (loading weights, GGUF conversion) by the same rule. Never turns them on
    (a caller may have turned them off)."""
    shown = _shown(progress)
    if shown is False or (shown is None and not sys.stderr.isatty()):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
