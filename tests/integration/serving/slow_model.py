"""pyfunc models for serving tests (importable by module path, never from __main__)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class Slow:
    """Sleeps 0.3 s per batch, then answers 0 for every row."""

    def load(self, context: Any) -> None:
        self.delay = 0.3

    def predict(self, data: Any) -> np.ndarray:
        time.sleep(self.delay)
        return np.zeros(len(np.asarray(data)), dtype=np.int64)


class Constant:
    """Answers its class attribute ``value`` for every row (subclass to get another value)."""

    value = 0

    def load(self, context: Any) -> None:
        return None

    def predict(self, data: Any) -> np.ndarray:
        return np.full(len(np.asarray(data)), self.value, dtype=np.int64)


class One(Constant):
    value = 1
