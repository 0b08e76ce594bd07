"""XGBoostRuntime: wrappers and Boosters round-trip through the native UBJSON format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes

from modelyard.errors import DependencyMissingError, UnsupportedModelError
from modelyard.runtimes.base import LoadOptions, SaveOptions
from modelyard.runtimes.catalog import RuntimeCatalog
from modelyard.runtimes.sklearn import SklearnRuntime
from modelyard.runtimes.xgboost import XGBoostRuntime
from modelyard.testing.conformance import check_runtime

_SMALL: dict[str, Any] = {"n_estimators": 8, "max_depth": 3, "n_jobs": 1, "random_state": 0}


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_diabetes(return_X_y=True)
    return X, y


@pytest.fixture
def catalog() -> RuntimeCatalog:
    return RuntimeCatalog([SklearnRuntime(), XGBoostRuntime()])


def test_classifier_with_feature_names(
    cancer: tuple[pd.DataFrame, pd.Series], catalog: RuntimeCatalog, tmp_path: Path
) -> None:
    X, y = cancer
    model = xgb.XGBClassifier(**_SMALL).fit(X, y)
    predictor = check_runtime(XGBoostRuntime(), model, X, catalog=catalog)
    assert hasattr(predictor, "predict_proba")
    saved = XGBoostRuntime().save(model, tmp_path, SaveOptions(sample_input=X))
    assert saved.meta["wrapper"] == "XGBClassifier"
    assert saved.meta["classes"] == [0, 1]
    assert saved.meta["feature_names"] == list(X.columns)
    assert saved.meta["objective"] == "binary:logistic"


def test_columns_are_fed_in_training_order(
    cancer: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    X, y = cancer
    model = xgb.XGBClassifier(**_SMALL).fit(X, y)
    runtime = XGBoostRuntime()
    saved = runtime.save(model, tmp_path, SaveOptions(sample_input=X))
    predictor = runtime.load(tmp_path, saved.meta, LoadOptions())
    shuffled = {name: X[name].to_numpy() for name in reversed(X.columns)}
    np.testing.assert_allclose(predictor.predict_proba(shuffled), model.predict_proba(X))


def test_regressor(diabetes: tuple[np.ndarray, np.ndarray], catalog: RuntimeCatalog) -> None:
    X, y = diabetes
    model = xgb.XGBRegressor(**_SMALL).fit(X, y)
    predictor = check_runtime(XGBoostRuntime(), model, X, catalog=catalog)
    assert not hasattr(predictor, "predict_proba")


def test_ranker(diabetes: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = diabetes
    model = xgb.XGBRanker(**_SMALL).fit(X[:100], y[:100] > 150, qid=np.repeat(np.arange(10), 10))
    check_runtime(XGBoostRuntime(), model, X[:100])


def test_raw_booster(diabetes: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = diabetes
    booster = xgb.train({"max_depth": 3, "nthread": 1}, xgb.DMatrix(X, label=y), 8)
    expected = booster.predict(xgb.DMatrix(X))
    predictor = check_runtime(XGBoostRuntime(), booster, X, expected=expected)
    assert not hasattr(predictor, "predict_proba")


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_save_path_loads_a_booster(
    suffix: str, cancer: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    X, y = cancer
    model = xgb.XGBClassifier(**_SMALL).fit(X, y)
    source = tmp_path / f"exported{suffix}"
    model.save_model(source)
    runtime = XGBoostRuntime()
    assert runtime.can_save_path(source)
    target = tmp_path / "stored"
    target.mkdir()
    saved = runtime.save_path(source, target, SaveOptions())
    assert saved.meta["wrapper"] == "Booster"
    assert saved.meta["file"] == f"model{suffix}"
    predictor = runtime.load(target, saved.meta, LoadOptions(intra_op_threads=2))
    columns = {name: X[name].to_numpy() for name in X.columns}
    np.testing.assert_allclose(predictor.predict(columns), model.predict_proba(X)[:, 1])


def test_other_json_files_are_not_claimed(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"name": "not a model"}')
    assert not XGBoostRuntime().can_save_path(path)


def test_load_uses_requested_threads(
    diabetes: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = diabetes
    model = xgb.XGBRegressor(**_SMALL).fit(X, y)
    runtime = XGBoostRuntime()
    saved = runtime.save(model, tmp_path, SaveOptions())
    assert runtime.load(tmp_path, saved.meta, LoadOptions()).model.n_jobs == 1
    loaded = runtime.load(tmp_path, saved.meta, LoadOptions(intra_op_threads=2))
    assert loaded.model.n_jobs == 2


def test_categorical_features_are_refused(tmp_path: Path) -> None:
    X = pd.DataFrame({"city": pd.Categorical(["a", "b", "a", "c"] * 5), "n": np.arange(20.0)})
    model = xgb.XGBRegressor(n_estimators=2, enable_categorical=True, tree_method="hist")
    model.fit(X, np.arange(20.0))
    with pytest.raises(UnsupportedModelError, match=r"categorical features.*OrdinalEncoder"):
        XGBoostRuntime().save(model, tmp_path, SaveOptions())


def test_unfitted_objects_of_other_libraries_are_not_claimed() -> None:
    from sklearn.linear_model import LinearRegression

    assert not XGBoostRuntime().can_save(LinearRegression())
    assert XGBoostRuntime().can_save(xgb.XGBRFClassifier())


def test_xgboost_is_imported_only_when_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code = "import sys, modelyard, modelyard.runtimes.xgboost; sys.exit('xgboost' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    monkeypatch.setitem(sys.modules, "xgboost", None)  # as if it were not installed
    with pytest.raises(DependencyMissingError, match=r"pip install 'modelyard\[xgboost\]'"):
        XGBoostRuntime().load(tmp_path, {"wrapper": "Booster"}, LoadOptions())
