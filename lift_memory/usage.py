"""What a call cost: tokens, seconds and peak memory (:class:`~lift_memory.types.Usage`), measured as it runs.

:class:`PeakMemory` measures the peak memory of a block of code without touching any process-wide counter: on a
CPU it samples the process's resident memory (``/proc/self/statm``) every few milliseconds in a thread; on
CUDA it reads torch's peak of allocated memory, reset when the block starts. Where neither is available (not
Linux, no CUDA) the peak is None.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_STATM = Path("/proc/self/statm")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_mb() -> float | None:
    """The process's resident memory now, in MB (None where ``/proc`` is not available)."""
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return None


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.mb`` (None: not measurable here) and ``peak.kind``
    (``"rss"``: the process's resident memory; ``"cuda"``: allocated on the GPU)."""

    def __init__(self, device=None, interval: float = 0.005) -> None:
        self.device, self.interval = device, interval
        self.kind = "cuda" if device is not None and getattr(device, "type", str(device)).startswith("cuda") else "rss"
        self.mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.kind == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.mb = resident_mb()
            if self.mb is not None:
                self._thread = threading.Thread(target=self._sample, name="lift-memory-peak", daemon=True)
                self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            now = resident_mb()
            if now is not None and now > (self.mb or 0):
                self.mb = now

    def __exit__(self, *exc_info: object) -> None:
        if self.kind == "cuda":
            import torch

            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        now = resident_mb()
        if now is not None and self.mb is not None:
            self.mb = max(self.mb, now)
