"""scikit-learn models, stored with skops: loading never runs code from the file.

skops refuses types it does not know. We additionally trust types defined inside scikit-learn
itself (such as ``sklearn.tree._tree.Tree``, which every forest holds): they are rebuilt from
arrays, not called. Anything else (your own classes, third-party estimators, functions) must be
listed in ``trusted_types`` at registration, and the list is stored with the version so that
loading trusts exactly what the registrant trusted. The rule lives in
:mod:`modelyard.security.skops_types`, which the scanner shares.

Plain pickle or joblib files are refused unless the user passes ``trust_pickle``; even then
they are converted to skops at registration, so no pickle is ever stored or loaded again.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelyard.core.tabular import Columns
from modelyard.errors import UnsafeModelError, UnsupportedModelError
from modelyard.runtimes.base import LoadOptions, SavedModel, SaveOptions, to_frame, to_matrix
from modelyard.security.skops_types import check_trusted_types, skops_io

__all__ = ["SklearnPredictor", "SklearnRuntime"]

_FILE = "model.skops"
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


def _is_sklearn(obj: object) -> bool:
    return any(c.__module__.startswith("sklearn.") for c in type(obj).__mro__[:-1])


# Classifiers whose predict() is exactly classes_[argmax(predict_proba())]: a server asked for
# both outputs can then run the model once instead of twice. (Not SVC: its Platt-scaled
# probabilities may disagree with its decision function.)
_ARGMAX_MODULES = (
    "sklearn.ensemble._forest", "sklearn.tree.", "sklearn.linear_model._logistic",
    "sklearn.ensemble._gb", "sklearn.ensemble._hist_gradient_boosting", "sklearn.naive_bayes",
)


def _argmax_of_proba(estimator: Any) -> bool:
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return type(final).__module__.startswith(_ARGMAX_MODULES)


class SklearnPredictor:
    """A fitted estimator; feeds it a DataFrame when it was fitted with feature names."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        names = getattr(estimator, "feature_names_in_", None)
        self.feature_names = [str(n) for n in names] if names is not None else None
        self._index: Any = None
        self.classes = getattr(estimator, "classes_", None)
        if hasattr(estimator, "predict_proba"):
            self.predict_proba = self._predict_proba
        self.predict_from_proba = self.classes is not None and _argmax_of_proba(estimator)

    def _native(self, data: Columns | np.ndarray) -> Any:
        if self.feature_names is None:
            return to_matrix(data)
        if self._index is None:
            import pandas as pd

            # An object-dtype index, built once: with pandas' default (Arrow) strings, building
            # it and scikit-learn's feature-name check on it cost ~0.25 ms per predict call.
            self._index = pd.Index(self.feature_names, dtype=object)
        if isinstance(data, np.ndarray):
            return to_frame(data, columns=self._index)
        return to_frame({n: data[n] for n in self.feature_names}, columns=self._index)

    def predict(self, data: Columns | np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict(self._native(data)))

    def _predict_proba(self, data: Columns | np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(self._native(data)))


class SklearnRuntime:
    """scikit-learn estimators and pipelines (format id ``sklearn``)."""

    format: ClassVar[str] = "sklearn"
    priority: ClassVar[int] = 10

    def can_save(self, obj: object) -> bool:
        return _is_sklearn(obj) and callable(getattr(obj, "predict", None))

    def can_save_path(self, path: Path) -> bool:
        return path.is_file() and path.suffix in (".skops", *_PICKLE_SUFFIXES)

    def save(self, obj: object, directory: Path, options: SaveOptions) -> SavedModel:
        sio = skops_io()
        target = directory / _FILE
        sio.dump(obj, target)
        trusted = check_trusted_types(sio.get_untrusted_types(file=target), options.trusted_types)
        return SavedModel(meta=_meta(obj, trusted))

    def save_path(self, path: Path, directory: Path, options: SaveOptions) -> SavedModel:
        sio = skops_io()
        if path.suffix in _PICKLE_SUFFIXES:
            return self.save(_load_pickle(path, options), directory, options)
        trusted = check_trusted_types(sio.get_untrusted_types(file=path), options.trusted_types)
        obj = sio.load(path, trusted=trusted)
        if not self.can_save(obj):
            raise UnsupportedModelError(
                f"{str(path)!r} holds a {type(obj).__name__}, which has no predict method.",
                hint="Register a fitted estimator or pipeline.",
            )
        shutil.copyfile(path, directory / _FILE)
        return SavedModel(meta=_meta(obj, trusted))

    def load(self, directory: Path, meta: dict[str, Any], options: LoadOptions) -> SklearnPredictor:
        sio = skops_io()
        path = directory / meta.get("file", _FILE)
        # The types to trust, by the same rule as at registration: scikit-learn's own and the
        # ones trusted then (versions saved by older modelyards list only the latter).
        trusted = check_trusted_types(sio.get_untrusted_types(file=path), meta["trusted_types"])
        return SklearnPredictor(sio.load(path, trusted=trusted))


def _load_pickle(path: Path, options: SaveOptions) -> object:
    if not options.trust_pickle:
        raise UnsafeModelError(
            f"{str(path)!r} is a pickle file: loading it can execute arbitrary code, so "
            "modelyard refuses it by default.",
            hint="Save the model with skops instead, or pass trust_pickle=True "
            "(CLI: --trust-pickle) if you trust its author; it is then stored as skops.",
        )
    if path.suffix == ".joblib":
        import joblib

        return joblib.load(path)
    with open(path, "rb") as fh:
        return pickle.load(fh)


def _meta(obj: object, trusted: list[str]) -> dict[str, Any]:
    classes = getattr(obj, "classes_", None)
    names = getattr(obj, "feature_names_in_", None)
    return {
        "file": _FILE,
        "class": f"{type(obj).__module__}.{type(obj).__qualname__}",
        "trusted_types": trusted,
        "has_proba": callable(getattr(obj, "predict_proba", None)),
        "classes": np.asarray(classes).tolist() if classes is not None else None,
        "feature_names": [str(n) for n in names] if names is not None else None,
    }
