"""pyfunc challengers for the rollout tests (importable by module path, never from __main__).

Registration predicts on a sample of zeros (and refuses a model that fails there); the tests
send rows of ones. So these models register fine and misbehave on the live traffic only."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class Zero:
    """A fast champion: 0 for every row."""

    def load(self, context: Any) -> None:
        return None

    def predict(self, data: Any) -> np.ndarray:
        return np.zeros(len(np.asarray(data)), dtype=np.int64)


def _live(data: Any) -> bool:
    return bool(np.asarray(data).any())


class FailsOnLiveData(Zero):
    """Raises on every predict of live (non-zero) rows."""

    def predict(self, data: Any) -> np.ndarray:
        if _live(data):
            raise RuntimeError("the challenger is broken")
        return super().predict(data)


class SlowOnLiveData(Zero):
    """Takes 0.2 s per predict call of live rows (the champion takes microseconds)."""

    def predict(self, data: Any) -> np.ndarray:
        if _live(data):
            time.sleep(0.2)
        return super().predict(data)
