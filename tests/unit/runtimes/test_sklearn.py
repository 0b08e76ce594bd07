"""SklearnRuntime: estimators round-trip through skops; pickles and unknown types need trust."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from modelyard.errors import UnsafeModelError, UnsupportedModelError
from modelyard.runtimes.base import LoadOptions, SaveOptions
from modelyard.runtimes.catalog import RuntimeCatalog
from modelyard.runtimes.sklearn import SklearnPredictor, SklearnRuntime
from modelyard.testing.conformance import check_runtime


def halve(x: Any) -> Any:
    """A user-defined function: skops stores it by name and does not trust it."""
    return x / 2


# The name skops reports for ``halve``: this file is imported under its base name by pytest.
HALVE = f"{__name__}.halve"


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="module")
def forest(cancer: tuple[pd.DataFrame, pd.Series]) -> tuple[np.ndarray, RandomForestClassifier]:
    X, y = cancer
    matrix = X.to_numpy()
    return matrix, RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(
        matrix, y
    )


@pytest.fixture
def catalog() -> RuntimeCatalog:
    return RuntimeCatalog()  # every installed runtime, as the Client uses them


def _stored(tmp_path: Path) -> Path:
    target = tmp_path / "stored"
    target.mkdir()
    return target


def test_pipeline_on_a_dataframe_keeps_feature_names(
    cancer: tuple[pd.DataFrame, pd.Series], catalog: RuntimeCatalog, tmp_path: Path
) -> None:
    X, y = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    predictor = check_runtime(SklearnRuntime(), model, X, catalog=catalog)
    assert predictor.feature_names == list(X.columns)  # type: ignore[attr-defined]
    saved = SklearnRuntime().save(model, tmp_path, SaveOptions(sample_input=X))
    assert saved.meta["class"] == "sklearn.pipeline.Pipeline"
    assert saved.meta["has_proba"] is True
    assert saved.meta["classes"] == [0, 1]
    assert saved.meta["feature_names"] == list(X.columns)
    assert saved.meta["trusted_types"] == []


def test_forest_on_a_matrix_trusts_sklearn_tree(
    forest: tuple[np.ndarray, RandomForestClassifier], catalog: RuntimeCatalog, tmp_path: Path
) -> None:
    X, model = forest
    predictor = check_runtime(SklearnRuntime(), model, X, catalog=catalog)
    assert predictor.feature_names is None  # type: ignore[attr-defined]
    saved = SklearnRuntime().save(model, tmp_path, SaveOptions(sample_input=X))
    # skops does not trust the Cython Tree by default; types from sklearn itself we do.
    assert saved.meta["trusted_types"] == ["sklearn.tree._tree.Tree"]
    assert saved.meta["feature_names"] is None


def test_hist_gradient_boosting_regressor(catalog: RuntimeCatalog) -> None:
    X, y = load_diabetes(return_X_y=True)
    model = HistGradientBoostingRegressor(max_iter=10, random_state=0).fit(X, y)
    predictor = check_runtime(SklearnRuntime(), model, X, catalog=catalog)
    assert not hasattr(predictor, "predict_proba")


def test_column_transformer_on_numeric_and_text_columns(catalog: RuntimeCatalog) -> None:
    rng = np.random.default_rng(0)
    n = 120
    X = pd.DataFrame({
        "amount": rng.normal(100, 30, n),
        "age": rng.integers(18, 90, n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
        "channel": rng.choice(["web", "shop"], n),
    })
    y = ((X["amount"] > 100) ^ (X["city"] == "nice")).astype(int).to_numpy()
    model = make_pipeline(
        ColumnTransformer([
            ("num", StandardScaler(), ["amount", "age"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "channel"]),
        ]),
        LogisticRegression(max_iter=1000),
    ).fit(X, y)
    predictor = check_runtime(SklearnRuntime(), model, X, catalog=catalog)
    # Columns arrive by name, whatever their order.
    shuffled = {name: X[name].to_numpy() for name in reversed(X.columns)}
    np.testing.assert_array_equal(predictor.predict(shuffled), model.predict(X))


def _dump(model: object, path: Path) -> None:
    if path.suffix == ".joblib":
        joblib.dump(model, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(model, fh)


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".joblib"])
def test_pickle_is_refused_without_trust(
    suffix: str, forest: tuple[np.ndarray, RandomForestClassifier], tmp_path: Path
) -> None:
    _, model = forest
    source = tmp_path / f"model{suffix}"
    _dump(model, source)
    runtime = SklearnRuntime()
    assert runtime.can_save_path(source)
    target = _stored(tmp_path)
    with pytest.raises(UnsafeModelError, match=r"is a pickle file.*refuses it") as info:
        runtime.save_path(source, target, SaveOptions())
    assert info.value.hint is not None
    assert "trust_pickle=True" in info.value.hint
    assert not any(target.iterdir())


@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_trusted_pickle_is_stored_as_skops(
    suffix: str, forest: tuple[np.ndarray, RandomForestClassifier], tmp_path: Path
) -> None:
    X, model = forest
    source = tmp_path / f"model{suffix}"
    _dump(model, source)
    runtime = SklearnRuntime()
    target = _stored(tmp_path)
    saved = runtime.save_path(source, target, SaveOptions(trust_pickle=True))
    assert sorted(p.name for p in target.iterdir()) == ["model.skops"]
    # A skops file, which sio.load reads without unpickling anything.
    assert sio.get_untrusted_types(file=target / "model.skops") == ["sklearn.tree._tree.Tree"]
    predictor = runtime.load(target, saved.meta, LoadOptions())
    np.testing.assert_array_equal(predictor.predict(X), model.predict(X))
    np.testing.assert_allclose(predictor.predict_proba(X), model.predict_proba(X))  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def halving() -> tuple[np.ndarray, Any]:
    X, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(FunctionTransformer(halve), StandardScaler(), LogisticRegression())
    return X, model.fit(X, y)


def test_untrusted_function_is_refused_with_its_name(
    halving: tuple[np.ndarray, Any], tmp_path: Path
) -> None:
    _, model = halving
    with pytest.raises(UnsafeModelError, match=rf"does not trust by default: \['{HALVE}'\]"):
        SklearnRuntime().save(model, tmp_path, SaveOptions())


def test_untrusted_function_is_accepted_when_listed(
    halving: tuple[np.ndarray, Any], tmp_path: Path
) -> None:
    X, model = halving
    options = SaveOptions(sample_input=X, trusted_types=(HALVE,))
    check_runtime(SklearnRuntime(), model, X, options=options)
    saved = SklearnRuntime().save(model, tmp_path, options)
    assert saved.meta["trusted_types"] == [HALVE]  # stored, so loading trusts the same


def test_save_path_refuses_untrusted_types_in_a_skops_file(
    halving: tuple[np.ndarray, Any], tmp_path: Path
) -> None:
    _, model = halving
    source = tmp_path / "halving.skops"
    sio.dump(model, source)
    target = _stored(tmp_path)
    with pytest.raises(UnsafeModelError, match=HALVE) as info:
        SklearnRuntime().save_path(source, target, SaveOptions())
    assert info.value.hint is not None
    assert "--trust-type" in info.value.hint
    assert not any(target.iterdir())
    saved = SklearnRuntime().save_path(source, target, SaveOptions(trusted_types=(HALVE,)))
    assert saved.meta["trusted_types"] == [HALVE]


def test_save_path_copies_a_skops_file(
    forest: tuple[np.ndarray, RandomForestClassifier], tmp_path: Path
) -> None:
    X, model = forest
    source = tmp_path / "forest.skops"
    sio.dump(model, source)
    runtime = SklearnRuntime()
    assert runtime.can_save_path(source)
    target = _stored(tmp_path)
    saved = runtime.save_path(source, target, SaveOptions())
    assert (target / "model.skops").read_bytes() == source.read_bytes()
    assert saved.meta["class"] == "sklearn.ensemble._forest.RandomForestClassifier"
    assert saved.meta["trusted_types"] == ["sklearn.tree._tree.Tree"]
    assert saved.meta["has_proba"] is True
    predictor = runtime.load(target, saved.meta, LoadOptions())
    np.testing.assert_array_equal(predictor.predict(X), model.predict(X))
    np.testing.assert_allclose(predictor.predict_proba(X), model.predict_proba(X))  # type: ignore[attr-defined]


def test_save_path_refuses_a_skops_file_without_predict(tmp_path: Path) -> None:
    source = tmp_path / "scaler.skops"
    sio.dump(StandardScaler().fit(np.eye(3)), source)
    with pytest.raises(UnsupportedModelError, match="StandardScaler, which has no predict"):
        SklearnRuntime().save_path(source, _stored(tmp_path), SaveOptions())


@pytest.mark.parametrize(
    ("name", "claimed"),
    [("m.skops", True), ("m.pkl", True), ("m.joblib", True), ("m.onnx", False),
     ("m.json", False), ("folder.skops", False)],
    ids=["skops", "pkl", "joblib", "onnx", "json", "folder"],
)
def test_can_save_path(name: str, claimed: bool, tmp_path: Path) -> None:
    path = tmp_path / name
    if name.startswith("folder"):
        path.mkdir()
    else:
        path.write_bytes(b"")
    assert SklearnRuntime().can_save_path(path) is claimed


def test_unfitted_or_non_sklearn_objects_are_not_claimed() -> None:
    runtime = SklearnRuntime()
    assert runtime.can_save(LogisticRegression())  # unfitted: caught when it predicts
    assert not runtime.can_save(StandardScaler())  # no predict
    assert not runtime.can_save(object())



@pytest.mark.parametrize(
    "estimator",
    [RandomForestClassifier(n_estimators=5, random_state=0), LogisticRegression(max_iter=3000),
     HistGradientBoostingClassifier(max_iter=10)],
    ids=["forest", "logreg", "hist-gbm"],
)
def test_predict_equals_argmax_of_proba_where_declared(estimator: Any) -> None:
    X, y = load_iris(return_X_y=True)
    predictor = SklearnPredictor(estimator.fit(X, y))
    assert predictor.predict_from_proba
    derived = predictor.classes[predictor.predict_proba(X).argmax(axis=1)]
    np.testing.assert_array_equal(derived, predictor.predict(X))


def test_other_classifiers_do_not_claim_argmax() -> None:
    X, y = load_iris(return_X_y=True)
    assert not SklearnPredictor(SVC().fit(X, y)).predict_from_proba


def test_load_trusts_sklearn_types_by_rule_and_only_the_listed_others(
    halving: tuple[np.ndarray, Any], tmp_path: Path
) -> None:
    # Whatever skops trusts by default, loading applies modelyard's rule: scikit-learn's own
    # types, plus what was trusted at registration (meta), nothing else.
    X, model = halving
    runtime = SklearnRuntime()
    saved = runtime.save(model, tmp_path, SaveOptions(trusted_types=(HALVE,)))
    loaded = runtime.load(tmp_path, {**saved.meta, "trusted_types": [HALVE]}, LoadOptions())
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    with pytest.raises(UnsafeModelError, match=HALVE):
        runtime.load(tmp_path, {**saved.meta, "trusted_types": []}, LoadOptions())
