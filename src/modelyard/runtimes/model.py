"""The loaded model users call: signature checks around a runtime's predictor."""

from __future__ import annotations

import tempfile
import weakref
from typing import Any

from modelyard.core.entities import ModelVersion
from modelyard.core.signature import Signature
from modelyard.errors import ModelyardError, PredictionError
from modelyard.runtimes.base import Predictor

__all__ = ["Model"]


class Model:
    """A registered version, loaded and ready to predict.

    ``predict`` and ``predict_proba`` check the input against the version's signature first,
    so a missing column or a wrong dtype is a :class:`SignatureError` naming the column, and an
    exception raised by the model itself is a :class:`PredictionError`.
    """

    def __init__(
        self,
        predictor: Predictor,
        version: ModelVersion,
        files: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        self.predictor = predictor
        self.version = version
        self.signature: Signature | None = version.signature
        if files is not None:  # keep the files (pyfunc artifacts) as long as the model lives
            weakref.finalize(self, files.cleanup)

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def has_proba(self) -> bool:
        return callable(getattr(self.predictor, "predict_proba", None))

    def prepare(self, data: Any) -> Any:
        """Check ``data`` against the signature and return it in the predictor's input form."""
        if self.signature is None:
            return data
        return self.signature.validate_input(data)

    def predict(self, data: Any) -> Any:
        """Predict for ``data`` (a table or an array), checked against the signature."""
        prepared = self.prepare(data)
        return self._call("predict", prepared)

    def predict_proba(self, data: Any) -> Any:
        """Class probabilities, for classifiers that have them."""
        if not self.has_proba:
            raise PredictionError(
                f"Model {self.version.uri} ({self.version.format}) has no predict_proba.",
                hint="Use predict(), or register a classifier that exposes probabilities.",
            )
        return self._call("predict_proba", self.prepare(data))

    def _call(self, method: str, prepared: Any) -> Any:
        try:
            return getattr(self.predictor, method)(prepared)
        except ModelyardError:
            raise
        except Exception as exc:
            raise PredictionError(
                f"Model {self.version.uri} raised {type(exc).__name__} in {method}: {exc}",
                hint="The input passed the signature check; the error comes from the model.",
            ) from exc

    def __repr__(self) -> str:
        return f"<Model {self.version.uri} format={self.version.format}>"
