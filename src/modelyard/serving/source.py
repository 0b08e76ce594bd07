"""Where the server gets models: anything that can resolve references and load versions.

:class:`modelyard.Client` satisfies this protocol; tests may pass a fake.
"""

from __future__ import annotations

from typing import Protocol

from modelyard.core.entities import ModelVersion
from modelyard.core.references import ModelRef
from modelyard.runtimes.model import Model

__all__ = ["ModelSource"]


class ModelSource(Protocol):
    def resolve(self, ref: str | ModelRef) -> ModelVersion: ...

    def load(self, ref: str | ModelRef) -> Model: ...
