"""The driver's warm-up of model logging (raysweep.artifacts.warm_up): it saves a model the way
a trial's is logged, and leaves the export lock free for the writer."""

from __future__ import annotations

import sys

from raysweep import artifacts


def test_warm_up_saves_a_model_and_frees_the_export_lock() -> None:
    assert artifacts.warm_up()
    assert "torch._dynamo" in sys.modules  # torch.export's import: what the warm-up is for
    assert not artifacts.EXPORT_LOCK.locked()
