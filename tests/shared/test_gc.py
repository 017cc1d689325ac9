"""Services freeze what start-up allocated out of the cyclic garbage collector (shared.app)."""

from __future__ import annotations

import gc

from shared.app import GC_THRESHOLDS, tune_garbage_collector


def test_tuning_freezes_start_up_objects_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 1000  # modules, the app, its schemas: all long-lived
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # cycles made after start-up are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
