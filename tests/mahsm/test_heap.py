"""A settled heap: start-up objects frozen out of collections, young collections rarer."""

from __future__ import annotations

import gc

from mahsm.heap import YOUNG_THRESHOLD, settle_heap


def test_settling_freezes_what_exists_and_raises_only_the_young_threshold() -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    try:
        kept = [[index] for index in range(1000)]  # containers alive at "start-up"
        settle_heap()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
        gc.collect()  # frozen objects survive a full collection untouched
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
