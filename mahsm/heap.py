"""The garbage collector's settings of a long-running MAHSM process (worker, API).

A started process holds ~180,000 objects that live as long as it does (modules, pydantic
models, DSPy, the app). Every full collection scanned them all again: ~130-210 ms each, a
pause of the event loop in the middle of tasks. Frozen once the process is ready, they are
never scanned again.

Collections of the young generation are made rarer as well: a task allocates tens of
thousands of short-lived containers (payloads, models, spans), which reference counting frees;
at CPython's default threshold (700) the collector ran ~1.5 times per task to find the few
cycles among them. Measured on the efficiency benchmark's (c) workload, the collector went
from ~4 ms of CPU per task to ~0.5 ms (docs/performance.md, "Garbage collection of the
worker").
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Allocations of container objects between two collections of the young generation."""


def settle_heap() -> None:
    """Collect once, freeze what is left (it lives as long as the process), collect less often.

    Call it when the process has built everything it keeps (after imports and start-up).
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
