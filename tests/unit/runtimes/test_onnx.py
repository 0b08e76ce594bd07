"""The onnx runtime, on scikit-learn models converted by skl2onnx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelyard.core.signature import ColumnSpec, TensorSpec
from modelyard.errors import UnsupportedModelError
from modelyard.runtimes.base import LoadOptions, SaveOptions
from modelyard.runtimes.catalog import RuntimeCatalog
from modelyard.runtimes.onnx import OnnxRuntime
from modelyard.runtimes.sklearn import SklearnRuntime
from modelyard.testing.conformance import check_runtime

ATOL = 1e-4  # onnxruntime computes in float32


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, LogisticRegression]:
    raw, y = load_breast_cancer(return_X_y=True, as_frame=True)
    # Scaled so that LogisticRegression converges without a warning.
    x = pd.DataFrame(StandardScaler().fit_transform(raw), columns=raw.columns)
    return x, LogisticRegression(max_iter=1000).fit(x.to_numpy(), y)


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, RandomForestRegressor]:
    x, y = load_diabetes(return_X_y=True)
    return x, RandomForestRegressor(n_estimators=10, random_state=0).fit(x, y)


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "tensor"])
@pytest.mark.parametrize("as_frame", [False, True], ids=["array", "frame"])
def test_classifier_conforms(
    cancer: tuple[pd.DataFrame, LogisticRegression], zipmap: bool, as_frame: bool
) -> None:
    x, clf = cancer
    options: dict[int, dict[str, Any]] = {} if zipmap else {id(clf): {"zipmap": False}}
    proto = to_onnx(clf, x.to_numpy()[:1].astype(np.float32), options=options)
    sample = x.iloc[:50] if as_frame else x.to_numpy()[:50]
    predictor = check_runtime(
        OnnxRuntime(),
        proto,
        sample,
        expected=clf.predict(x.to_numpy()[:50]),
        expected_proba=clf.predict_proba(x.to_numpy()[:50]),
        atol=ATOL,
        catalog=RuntimeCatalog([OnnxRuntime(), SklearnRuntime()]),
    )
    assert predictor.predict_proba(x.to_numpy()[:3]).shape == (3, 2)  # type: ignore[attr-defined]


def test_regressor_conforms_without_proba(
    diabetes: tuple[np.ndarray, RandomForestRegressor],
) -> None:
    x, reg = diabetes
    proto = to_onnx(reg, x[:1].astype(np.float32))
    # sklearn trees compare in float32 as well, so cast first to compare like with like.
    expected = reg.predict(x[:40].astype(np.float32))
    predictor = check_runtime(OnnxRuntime(), proto, x[:40], expected=expected, atol=ATOL)
    assert not hasattr(predictor, "predict_proba")


def test_signature_comes_from_the_graph(
    cancer: tuple[pd.DataFrame, LogisticRegression], tmp_path: Path
) -> None:
    x, clf = cancer
    proto = to_onnx(clf, x.to_numpy()[:1].astype(np.float32))
    saved = OnnxRuntime().save(proto, tmp_path, SaveOptions())
    assert saved.signature is not None
    assert saved.signature.inputs.tensors == (TensorSpec("X", "float32", (-1, 30)),)
    assert saved.signature.outputs is not None
    assert saved.signature.outputs.tensors == (
        TensorSpec("output_label", "int64", (-1,)),
        TensorSpec("output_probability", "float32", (-1, -1)),  # ZipMap, as returned
    )
    assert saved.meta == {"file": "model.onnx"}


def test_one_input_per_column_becomes_a_table(
    cancer: tuple[pd.DataFrame, LogisticRegression], tmp_path: Path
) -> None:
    x, _ = cancer
    frame = x.iloc[:, :3]
    clf = make_pipeline(
        ColumnTransformer([("scale", StandardScaler(), list(frame.columns))]),
        LogisticRegression(),
    ).fit(frame, (frame.iloc[:, 0] > 0).astype(np.int64))
    proto = to_onnx(clf, frame[:1].astype(np.float32), options={id(clf[-1]): {"zipmap": False}})
    # skl2onnx gives one [N, 1] input per column and renames "mean radius" to "mean_radius".
    saved = OnnxRuntime().save(proto, tmp_path, SaveOptions())
    assert saved.signature is not None
    assert saved.signature.inputs.columns == tuple(
        ColumnSpec(name, "float32") for name in ("mean_radius", "mean_texture", "mean_perimeter")
    )
    predictor = OnnxRuntime().load(tmp_path, saved.meta, LoadOptions())
    want = clf.predict(frame)
    original = {str(name): frame[name].to_numpy() for name in frame.columns}
    renamed = dict(zip(saved.signature.inputs.names, original.values(), strict=True))
    shuffled = dict(reversed(renamed.items()))
    for columns in (shuffled, original):  # by name, else by position
        np.testing.assert_array_equal(predictor.predict(columns), want)
    np.testing.assert_array_equal(predictor.predict(frame.to_numpy()), want)


def test_save_path_copies_a_valid_file(
    diabetes: tuple[np.ndarray, RandomForestRegressor], tmp_path: Path
) -> None:
    x, reg = diabetes
    source = tmp_path / "forest.onnx"
    source.write_bytes(to_onnx(reg, x[:1].astype(np.float32)).SerializeToString())
    target = tmp_path / "stored"
    target.mkdir()
    runtime = OnnxRuntime()
    assert runtime.can_save_path(source)
    saved = runtime.save_path(source, target, SaveOptions())
    predictor = runtime.load(target, saved.meta, LoadOptions(intra_op_threads=2))
    got = predictor.predict(x[:5])
    np.testing.assert_allclose(got.ravel(), reg.predict(x[:5].astype(np.float32)), rtol=1e-5)


def test_truncated_file_is_refused(
    diabetes: tuple[np.ndarray, RandomForestRegressor], tmp_path: Path
) -> None:
    x, reg = diabetes
    data = to_onnx(reg, x[:1].astype(np.float32)).SerializeToString()
    source = tmp_path / "broken.onnx"
    source.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsupportedModelError, match=r"broken\.onnx.*not a readable ONNX model"):
        OnnxRuntime().save_path(source, tmp_path, SaveOptions())


@pytest.mark.parametrize(
    ("obj", "accepted"),
    [(b"\x08\x07", False), ("model.onnx", False), (object(), False)],
    ids=["bytes", "str", "object"],
)
def test_can_save_only_model_protos(obj: object, accepted: bool) -> None:
    assert OnnxRuntime().can_save(obj) is accepted


def test_can_save_path_needs_an_onnx_file(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "model.skops").write_bytes(b"")
    runtime = OnnxRuntime()
    assert runtime.can_save_path(tmp_path / "model.onnx")
    assert not runtime.can_save_path(tmp_path / "model.skops")
    assert not runtime.can_save_path(tmp_path)
