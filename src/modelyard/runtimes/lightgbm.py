"""LightGBM models, stored in LightGBM's text model format (``model.txt``): data, never code.

Every model is loaded back as a ``lightgbm.Booster``. For a classifier the stored classes map
the booster's output back to what ``LGBMClassifier`` returns: a binary booster gives p(class 1),
so ``predict_proba`` is ``[1 - p, p]``; a multiclass booster gives the probability matrix;
``predict`` is the class with the highest probability. Regressors, rankers and raw Boosters
(including ``.txt`` files, which do not name their classes) return ``Booster.predict``.

Prediction uses one thread unless ``LoadOptions.intra_op_threads`` says otherwise, so that
parallel requests and models do not oversubscribe the machine.
"""

from __future__ import annotations

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

__all__ = ["LightGBMPredictor", "LightGBMRuntime"]

_FILE = "model.txt"
_KINDS = {"LGBMClassifier": "classifier", "LGBMRegressor": "regressor", "LGBMRanker": "ranker",
          "Booster": "booster"}


def _lgb() -> Any:
    return import_framework("lightgbm", "lightgbm", "Using LightGBM models")


def _kind(obj: object) -> str | None:
    for cls in type(obj).__mro__:
        if cls.__module__.startswith("lightgbm.") and cls.__name__ in _KINDS:
            return _KINDS[cls.__name__]
    return None


class LightGBMPredictor:
    """A Booster, with the classes of the classifier it came from, if any."""

    def __init__(self, booster: Any, meta: dict[str, Any], threads: int) -> None:
        self.booster = booster
        self.threads = threads
        self.feature_names: list[str] = meta.get("feature_names") or []
        classes = meta.get("classes")
        self.classes = np.asarray(classes) if meta["kind"] == "classifier" and classes else None
        if self.classes is not None:
            self.predict_proba = self._predict_proba

    def _raw(self, data: Columns | np.ndarray) -> np.ndarray:
        if isinstance(data, dict) and self.feature_names:
            # LightGBM stores feature names with spaces replaced by underscores.
            named = {k.replace(" ", "_"): v for k, v in data.items()}
            if set(self.feature_names) <= set(named):
                data = {n: named[n] for n in self.feature_names}
        return np.asarray(self.booster.predict(to_matrix(data, np.float64),
                                               num_threads=self.threads))

    def predict(self, data: Columns | np.ndarray) -> np.ndarray:
        if self.classes is None:
            return self._raw(data)
        return np.asarray(self.classes[self._predict_proba(data).argmax(axis=1)])

    def _predict_proba(self, data: Columns | np.ndarray) -> np.ndarray:
        out = self._raw(data)
        return np.column_stack([1 - out, out]) if out.ndim == 1 else out


class LightGBMRuntime:
    """LightGBM Boosters and scikit-learn wrappers (format id ``lightgbm``).

    Asked before the sklearn runtime: ``LGBMClassifier`` is a scikit-learn estimator too, but
    the text format is portable across versions and safe without a list of trusted types.
    """

    format: ClassVar[str] = "lightgbm"
    priority: ClassVar[int] = 30

    def can_save(self, obj: object) -> bool:
        return _kind(obj) is not None

    def can_save_path(self, path: Path) -> bool:
        if not (path.is_file() and path.suffix == ".txt"):
            return False
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline().strip() == "tree"

    def save(self, obj: object, directory: Path, options: SaveOptions) -> SavedModel:
        model: Any = obj
        kind = str(_kind(model))
        booster = model if kind == "booster" else model.booster_
        if booster.pandas_categorical:
            # The predictor feeds float rows; pandas category codes would need the training
            # categories to be mapped again, or predictions follow the wrong branches.
            raise UnsupportedModelError(
                "This LightGBM model was trained on pandas categorical columns, which "
                "modelyard cannot serve yet.",
                hint="Encode categories as integer codes before training (LightGBM can still "
                "treat them as categorical with categorical_feature=[...]).",
            )
        if kind == "classifier" and callable(model.objective_):
            raise UnsupportedModelError(
                "This LGBMClassifier was trained with a custom objective function, so its "
                "booster returns raw scores, not probabilities.",
                hint="Register model.booster_ to serve the raw scores, or train with a "
                "built-in objective such as 'binary' or 'multiclass'.",
            )
        target = directory / _FILE
        booster.save_model(str(target))
        classes = getattr(model, "classes_", None)
        return SavedModel(meta=_meta(target, kind, booster.feature_name(), classes))

    def save_path(self, path: Path, directory: Path, options: SaveOptions) -> SavedModel:
        lgb = _lgb()
        if "version" not in _header(path):
            raise UnsupportedModelError(
                f"{str(path)!r} has no 'version=' line in its header, so it is not a LightGBM "
                "model file.",
                hint="Save the model with booster.save_model('model.txt').",
            )
        try:
            booster = lgb.Booster(model_file=str(path))
        except lgb.basic.LightGBMError as exc:
            raise UnsupportedModelError(
                f"LightGBM cannot load {str(path)!r}: {exc}",
                hint="Save the model with booster.save_model('model.txt').",
            ) from exc
        target = directory / _FILE
        shutil.copyfile(path, target)
        return SavedModel(meta=_meta(target, "booster", booster.feature_name(), None))

    def load(
        self, directory: Path, meta: dict[str, Any], options: LoadOptions
    ) -> LightGBMPredictor:
        lgb = _lgb()
        booster = lgb.Booster(model_file=str(directory / meta.get("file", _FILE)))
        return LightGBMPredictor(booster, meta, options.intra_op_threads or 1)


def _header(path: Path) -> dict[str, str]:
    """The ``key=value`` lines before the first tree."""
    header = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip() or line.startswith("Tree="):
                break
            key, _, value = line.rstrip("\n").partition("=")
            header[key] = value
    return header


def _meta(file: Path, kind: str, feature_names: list[str], classes: Any) -> dict[str, Any]:
    header = _header(file)
    return {
        "file": file.name,
        "kind": kind,
        # A custom objective function leaves no objective line in the file.
        "objective": header.get("objective", "custom").split(" ")[0],
        "classes": np.asarray(classes).tolist() if classes is not None else None,
        "feature_names": list(feature_names),
        "lightgbm_version": _lgb().__version__,
    }
