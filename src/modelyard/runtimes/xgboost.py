"""XGBoost models, stored in XGBoost's own UBJSON format (``model.ubj``): data, never code.

A scikit-learn wrapper (``XGBClassifier``, ``XGBRegressor``, ``XGBRanker`` and the random
forest variants) is rebuilt as the same wrapper at load time, so ``predict`` and
``predict_proba`` match the original. A raw ``Booster`` (and a ``.json``/``.ubj`` file, which
does not say whether it is a classifier) predicts what ``Booster.predict`` returns.

Prediction uses one thread unless ``LoadOptions.intra_op_threads`` says otherwise: serving
runs several models and requests in parallel, and XGBoost's default of all cores would
oversubscribe the machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelyard.core.tabular import Columns
from modelyard.errors import UnsupportedModelError
from modelyard.runtimes.base import (
    LoadOptions,
    SavedModel,
    SaveOptions,
    import_framework,
    to_matrix,
)

__all__ = ["XGBoostPredictor", "XGBoostRuntime"]

_FILE = "model.ubj"
_SUFFIXES = (".json", ".ubj")
# The classes load() may rebuild, nearest first in a model's MRO; XGBModel is their base.
_WRAPPERS = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor",
             "XGBModel", "Booster")


def _xgb() -> Any:
    return import_framework("xgboost", "xgboost", "Using XGBoost models")


def _wrapper(obj: object) -> str | None:
    for cls in type(obj).__mro__:
        if cls.__module__.startswith("xgboost.") and cls.__name__ in _WRAPPERS:
            return cls.__name__
    return None


class XGBoostPredictor:
    """A Booster or scikit-learn wrapper; feeds it float32 rows in its feature order."""

    def __init__(self, model: Any, feature_names: list[str] | None, threads: int) -> None:
        self.model = model
        self.feature_names = feature_names
        self.threads = threads
        self.is_booster = _wrapper(model) == "Booster"
        if callable(getattr(model, "predict_proba", None)):
            self.predict_proba = self._predict_proba

    def _matrix(self, data: Columns | np.ndarray) -> np.ndarray:
        if isinstance(data, dict) and self.feature_names and set(self.feature_names) <= set(data):
            data = {n: data[n] for n in self.feature_names}
        return to_matrix(data, np.float32)

    def predict(self, data: Columns | np.ndarray) -> np.ndarray:
        matrix = self._matrix(data)
        if self.is_booster:
            dmatrix = _xgb().DMatrix(matrix, feature_names=self.feature_names,
                                     nthread=self.threads)
            return np.asarray(self.model.predict(dmatrix))
        return np.asarray(self.model.predict(matrix))

    def _predict_proba(self, data: Columns | np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(self._matrix(data)))


class XGBoostRuntime:
    """XGBoost Boosters and scikit-learn wrappers (format id ``xgboost``).

    Asked before the sklearn runtime: ``XGBClassifier`` is a scikit-learn estimator too, but
    its native format is smaller, faster to load and safe without a list of trusted types.
    """

    format: ClassVar[str] = "xgboost"
    priority: ClassVar[int] = 30

    def can_save(self, obj: object) -> bool:
        return _wrapper(obj) is not None

    def can_save_path(self, path: Path) -> bool:
        if not (path.is_file() and path.suffix in _SUFFIXES):
            return False
        with open(path, "rb") as fh:
            # Both encodings open with the "learner" key; other JSON files do not.
            return b"learner" in fh.read(64)

    def save(self, obj: object, directory: Path, options: SaveOptions) -> SavedModel:
        model: Any = obj
        wrapper = str(_wrapper(model))
        booster = model if wrapper == "Booster" else model.get_booster()
        _refuse_categorical(booster)
        model.save_model(str(directory / _FILE))
        return SavedModel(meta=_meta(booster, wrapper, _FILE, getattr(model, "classes_", None)))

    def save_path(self, path: Path, directory: Path, options: SaveOptions) -> SavedModel:
        xgb = _xgb()
        try:
            booster = xgb.Booster(model_file=str(path))
        except xgb.core.XGBoostError as exc:
            raise UnsupportedModelError(
                f"XGBoost cannot load {str(path)!r}: {str(exc).splitlines()[0]}",
                hint="Save the model with model.save_model('model.ubj') (or '.json').",
            ) from exc
        _refuse_categorical(booster)
        # xgboost picks the encoding from the suffix, so the copy keeps it.
        file = f"model{path.suffix}"
        shutil.copyfile(path, directory / file)
        return SavedModel(meta=_meta(booster, "Booster", file, None))

    def load(self, directory: Path, meta: dict[str, Any], options: LoadOptions) -> XGBoostPredictor:
        xgb = _xgb()
        threads = options.intra_op_threads or 1
        path = str(directory / meta.get("file", _FILE))
        wrapper = meta["wrapper"]
        if wrapper not in _WRAPPERS:
            raise UnsupportedModelError(
                f"The stored XGBoost model names the class {wrapper!r}, which modelyard cannot "
                f"rebuild; it knows {list(_WRAPPERS)}.",
                hint="Upgrade modelyard, or register the model again from its Booster.",
            )
        if wrapper == "Booster":
            model = xgb.Booster(params={"nthread": threads}, model_file=path)
        else:
            model = getattr(xgb, wrapper)(n_jobs=threads)
            model.load_model(path)
        return XGBoostPredictor(model, meta.get("feature_names"), threads)


def _refuse_categorical(booster: Any) -> None:
    # Categorical splits need pandas category columns with the training categories; the
    # predictor feeds plain float rows and would silently predict the wrong branch.
    if "c" in (booster.feature_types or []):
        raise UnsupportedModelError(
            "This XGBoost model has categorical features (enable_categorical=True), which "
            "modelyard cannot serve yet.",
            hint="Encode categories as numbers before training, e.g. with an "
            "OrdinalEncoder in front of the model.",
        )


def _meta(booster: Any, wrapper: str, file: str, classes: Any) -> dict[str, Any]:
    config = json.loads(booster.save_config())
    return {
        "file": file,
        "wrapper": wrapper,
        "objective": config["learner"]["objective"]["name"],
        "classes": np.asarray(classes).tolist() if classes is not None else None,
        "feature_names": list(booster.feature_names) if booster.feature_names else None,
        "xgboost_version": _xgb().__version__,
    }
