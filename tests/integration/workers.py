"""Code run in child processes by the concurrency and crash tests (must be importable)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from modelyard import Client
from modelyard.settings import Settings


class Threshold:
    """A tiny pyfunc model: the workers avoid importing scikit-learn (seconds per process)."""

    def load(self, context: Any) -> None:
        self.cut = 0.0

    def predict(self, data: Any) -> np.ndarray:
        return (np.asarray(data)[:, 0] > self.cut).astype(np.int64)


def _settings(home: str, database_url: str, artifact_uri: str) -> Settings:
    return Settings(home=home, database_url=database_url, artifact_uri=artifact_uri,
                    user="worker")


def register_versions(home: str, database_url: str, artifact_uri: str, count: int,
                      barrier: object) -> list[int]:
    """Register ``count`` versions of 'shared' after all workers reach the barrier."""
    X = np.random.default_rng(0).normal(size=(150, 4))
    model = Threshold()
    with Client(_settings(home, database_url, artifact_uri)) as client:
        client.list_models()  # connect (and create the schema) before the race starts
        barrier.wait(timeout=120)  # type: ignore[attr-defined]  # a failed peer must not hang us
        return [client.register(model, "shared", data=X).version for _ in range(count)]


def register_forever(home: str, database_url: str, artifact_uri: str) -> None:
    """Register versions until killed, announcing each one on stdout."""
    X = np.random.default_rng(0).normal(size=(20_000, 12))
    model = Threshold()
    with Client(_settings(home, database_url, artifact_uri)) as client:
        print("ready", flush=True)
        while True:
            mv = client.register(model, "crash", data=X, params={"i": 1})
            print(f"registered {mv.version}", flush=True)


if __name__ == "__main__":
    # Import ourselves by module name so Threshold is not a __main__ class (pyfunc refuses those).
    from tests.integration.workers import register_forever as run

    run(*sys.argv[1:4])
