"""LightGBMRuntime: wrappers and Boosters round-trip through the text model format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from modelyard.errors import DependencyMissingError, UnsupportedModelError
from modelyard.runtimes.base import LoadOptions, SaveOptions
from modelyard.runtimes.catalog import RuntimeCatalog
from modelyard.runtimes.lightgbm import LightGBMRuntime
from modelyard.runtimes.sklearn import SklearnRuntime
from modelyard.testing.conformance import check_runtime

_SMALL: dict[str, Any] = {"n_estimators": 8, "num_leaves": 7, "n_jobs": 1, "verbose": -1,
                          "random_state": 0}


@pytest.fixture
def catalog() -> RuntimeCatalog:
    return RuntimeCatalog([SklearnRuntime(), LightGBMRuntime()])


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


def test_binary_classifier(
    cancer: tuple[pd.DataFrame, pd.Series], catalog: RuntimeCatalog, tmp_path: Path
) -> None:
    X, y = cancer
    model = lgb.LGBMClassifier(**_SMALL).fit(X, y)
    predictor = check_runtime(LightGBMRuntime(), model, X, catalog=catalog)
    assert hasattr(predictor, "predict_proba")
    saved = LightGBMRuntime().save(model, tmp_path, SaveOptions(sample_input=X))
    assert saved.meta["kind"] == "classifier"
    assert saved.meta["classes"] == [0, 1]
    assert saved.meta["objective"] == "binary"
    assert saved.meta["feature_names"] == [c.replace(" ", "_") for c in X.columns]


def test_multiclass_classifier_with_text_labels(catalog: RuntimeCatalog) -> None:
    X, y = load_iris(return_X_y=True)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    model = lgb.LGBMClassifier(**_SMALL).fit(X, labels)
    predictor = check_runtime(LightGBMRuntime(), model, X, catalog=catalog)
    assert set(predictor.predict(X)) <= set(labels)


def test_regressor(catalog: RuntimeCatalog) -> None:
    X, y = load_diabetes(return_X_y=True)
    model = lgb.LGBMRegressor(**_SMALL).fit(X, y)
    predictor = check_runtime(LightGBMRuntime(), model, X, catalog=catalog)
    assert not hasattr(predictor, "predict_proba")


def test_raw_booster() -> None:
    X, y = load_diabetes(return_X_y=True)
    params = {"objective": "regression", "num_leaves": 7, "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=8)
    check_runtime(LightGBMRuntime(), booster, X, expected=booster.predict(X))


def test_columns_are_fed_in_training_order(
    cancer: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    X, y = cancer
    model = lgb.LGBMClassifier(**_SMALL).fit(X, y)
    runtime = LightGBMRuntime()
    saved = runtime.save(model, tmp_path, SaveOptions())
    predictor = runtime.load(tmp_path, saved.meta, LoadOptions())
    shuffled = {name: X[name].to_numpy() for name in reversed(X.columns)}
    np.testing.assert_allclose(predictor.predict_proba(shuffled), model.predict_proba(X))


def test_save_path_loads_a_booster(cancer: tuple[pd.DataFrame, pd.Series], tmp_path: Path) -> None:
    X, y = cancer
    model = lgb.LGBMClassifier(**_SMALL).fit(X, y)
    source = tmp_path / "exported.txt"
    model.booster_.save_model(source)
    runtime = LightGBMRuntime()
    assert runtime.can_save_path(source)
    target = tmp_path / "stored"
    target.mkdir()
    saved = runtime.save_path(source, target, SaveOptions())
    assert saved.meta["kind"] == "booster"
    assert saved.meta["objective"] == "binary"
    predictor = runtime.load(target, saved.meta, LoadOptions(intra_op_threads=2))
    assert not hasattr(predictor, "predict_proba")
    expected = np.asarray(model.predict_proba(X))[:, 1]
    np.testing.assert_allclose(predictor.predict(X.to_numpy()), expected)


def test_other_text_files_are_refused(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    assert not LightGBMRuntime().can_save_path(notes)
    fake = tmp_path / "fake.txt"
    fake.write_text("tree\nnum_class=1\n\nTree=0\n")
    with pytest.raises(UnsupportedModelError, match="no 'version=' line"):
        LightGBMRuntime().save_path(fake, tmp_path, SaveOptions())


def test_pandas_categorical_columns_are_refused(tmp_path: Path) -> None:
    X = pd.DataFrame({"city": pd.Categorical(["a", "b", "c", "a"] * 10), "n": np.arange(40.0)})
    model = lgb.LGBMRegressor(**_SMALL, min_child_samples=2).fit(X, np.arange(40.0))
    with pytest.raises(UnsupportedModelError, match="pandas categorical columns"):
        LightGBMRuntime().save(model, tmp_path, SaveOptions())


def test_classifier_with_custom_objective_is_refused(tmp_path: Path) -> None:
    X, y = load_breast_cancer(return_X_y=True)

    def logloss(y_true: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 1 / (1 + np.exp(-raw))
        return p - y_true, p * (1 - p)

    model = lgb.LGBMClassifier(**{**_SMALL, "objective": logloss}).fit(X, y)
    with pytest.raises(UnsupportedModelError, match=r"custom objective.*model\.booster_"):
        LightGBMRuntime().save(model, tmp_path, SaveOptions())
    assert not any(tmp_path.iterdir())


def test_lightgbm_is_imported_only_when_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code = "import sys, modelyard, modelyard.runtimes.lightgbm; sys.exit('lightgbm' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # as if it were not installed
    with pytest.raises(DependencyMissingError, match=r"pip install 'modelyard\[lightgbm\]'"):
        LightGBMRuntime().load(tmp_path, {"kind": "booster"}, LoadOptions())
